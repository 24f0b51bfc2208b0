"""Clustering: ml-expert's clustering of labelled datasets with the label removed, scored against
the true labels (adjusted Rand index), next to k-means told the true number of classes.

Per dataset: the label column is dropped and the rows written to CSV; `ml-expert run FILE --task
clustering --json` runs in a fresh workspace (a child process, timed); its shipped package
(inference.py, onnxruntime) assigns every row; ARI against the true labels on all rows and on
the run's own test rows. The reference is KMeans(n_clusters = true k, n_init=10, seed) fit on the
same training rows through the same fitted preprocessing (an oracle: it is told k). A run whose
gate refused has no package; its chosen model (the run's joblib) is scored instead and marked.

    python benchmarks/clustering.py [--datasets iris wine] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, Recorder, datasets_dir, ml_expert_command, run_child, work_dir  # noqa: E402

DATASETS = ("iris", "penguins", "wine", "breast_cancer", "digits")
LABEL = "target"


def run_one(name: str, seed: int, budget: float) -> dict[str, Any]:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from ml_expert.runtime.inference import ModelInference
    from ml_expert.tools.data.schema import InputSchema, to_model_frame
    from ml_expert.tools.selection.clustering import fit_features

    folder = work_dir() / "clustering"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(datasets_dir() / f"{name}.csv")
    labels = frame[LABEL].astype(str).to_numpy()
    rows = folder / f"{name}-rows.csv"
    frame.drop(columns=[LABEL]).to_csv(rows, index=False)
    workspace = folder / f"ws-{name}"
    shutil.rmtree(workspace, ignore_errors=True)
    cmd = ml_expert_command(
        "run", str(rows), "--task", "clustering", "--json", "--workspace", str(workspace),
        "--seed", str(seed), "--budget", str(budget),
    )  # fmt: skip
    child = run_child(cmd, timeout=3600)
    try:
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"data": name, "rows": len(frame), "exit_code": child.returncode, "error": child.stderr[-500:]}
    run_dir = Path(outcome["run_dir"])
    schema = InputSchema.model_validate_json((run_dir / "data" / "schema.json").read_text())
    features_frame = frame.drop(columns=[LABEL])
    package = run_dir / "deployment"
    if (package / "manifest.json").exists():
        assigned = np.asarray(ModelInference(package).predict(features_frame))
        scored_by = "package (inference.py, onnxruntime)"
    else:
        chosen = outcome.get("chosen_model")
        model = joblib.load(run_dir / "models" / f"{chosen}.joblib")
        assigned = model.predict(to_model_frame(features_frame, schema))
        scored_by = f"{chosen}.joblib (the gate refused: no package)"
    train = pd.read_parquet(run_dir / "data" / "train.parquet")
    test_index = pd.read_parquet(run_dir / "data" / "test.parquet").index
    position = {index: i for i, index in enumerate(frame.index)}
    test_rows = np.array([position[i] for i in test_index])
    true_k = len(set(labels))
    features = fit_features(schema, train[schema.keys])
    oracle = KMeans(n_clusters=true_k, n_init=10, random_state=seed)
    oracle.fit(features.transform(train[schema.keys]))
    oracle_all = oracle.predict(features.transform(to_model_frame(features_frame, schema)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {
        "data": name,
        "rows": len(frame),
        "true_k": true_k,
        "status": outcome.get("status"),
        "chosen_model": outcome.get("chosen_model"),
        "k": metrics["test"]["n_clusters"],
        "test_silhouette": metrics["test"]["silhouette"],
        "stability": metrics["test"]["stability"],
        "ari_all_rows": round(float(adjusted_rand_score(labels, assigned)), 4),
        "ari_test_rows": round(float(adjusted_rand_score(labels[test_rows], assigned[test_rows])), 4),
        "kmeans_true_k_ari_all_rows": round(float(adjusted_rand_score(labels, oracle_all)), 4),
        "kmeans_true_k_ari_test_rows": round(
            float(adjusted_rand_score(labels[test_rows], oracle_all[test_rows])), 4
        ),
        "scored_by": scored_by,
        "wall_seconds": round(child.wall_seconds, 1),
        "peak_rss_mb": round(child.peak_rss_mb, 0),
        "reason": outcome.get("reason"),
    }
    shutil.rmtree(workspace, ignore_errors=True)
    rows.unlink()
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    recorder = Recorder(
        "clustering",
        {"datasets": args.datasets, "seed": args.seed, "budget_seconds": args.budget,
         "label": f"column {LABEL!r} removed before the run, used only for the ARI",
         "reference": "KMeans(true k, n_init=10) on the run's training rows, same fitted preprocessing"},
        argv,
    )  # fmt: skip
    rows = [run_one(name, args.seed, args.budget) for name in args.datasets]
    return recorder.save({"rows": rows}, args.out_dir)


if __name__ == "__main__":
    print(main())
