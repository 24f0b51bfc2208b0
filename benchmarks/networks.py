"""Sequence readers and fine-tuning, measured.

Part `readers`: the 1-D convolution, the LSTM and the Transformer encoder (tools/training/dnn.py
with `sequence_layer`) on the project's text data (reviews whose label only word order decides,
as in tests/test_text_sequence.py) and sequence data (sine/square/sawtooth waves): each trained by
the pipeline's own train_dnn (same callbacks, early stopping) on the pipeline's own prepared splits,
then scored on the test split: accuracy, training seconds, epochs, parameters.

Part `finetune`, on each of FINETUNE_SETS: the dataset sorted by one column (breast_cancer by
tumour size, diabetes by body-mass index, diamonds by carat): the first release learns on the
lower 60%, the new sample is the upper 60%; `ml-expert run new.csv` from scratch and `ml-expert run
new.csv --from production` in copies of the same workspace (same seed: the same test rows): the
test score (accuracy, R² for regression) and wall time of each, the released model's score on those
rows, and what was chosen. `--finetune-network` lets the network train in these runs (`--dnn`);
without it they run `--no-dnn`.

    python benchmarks/networks.py --seeds 0 1 --epochs 40
    python benchmarks/networks.py --parts finetune --finetune-sets diabetes diamonds
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the text and sequence data the tests train on

from test_text_sequence import _reviews, _waves  # noqa: E402

from benchmarks.common import Recorder, datasets_dir, ml_expert_command  # noqa: E402

READERS = ("conv", "lstm", "transformer")
FINETUNE_SETS = {"breast_cancer": "mean area", "diabetes": "bmi", "diamonds": "carat"}
"""Each dataset and the column it is sorted by: the new sample is shifted along it."""


def reader_rows(kind: str, rows: int, seed: int, epochs: int, work: Path) -> list[dict[str, Any]]:
    import numpy as np

    from ml_expert.tools.data.prepare import load_split, prepare_data
    from ml_expert.tools.scoring import score
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    frame, target = (_reviews(rows, seed), "verdict") if kind == "text" else (_waves(rows, seed, 48), "shape")
    data = work / f"{kind}-{seed}.csv"
    frame.to_csv(data, index=False)
    prepared = prepare_data(str(data), target, seed, work / f"{kind}-{seed}", modality=kind)
    schema = prepared.input_schema
    files, hashes = prepared.files, prepared.file_hashes
    import joblib

    from ml_expert.tools.data.splits import read_array

    x = {s: read_array(files[f"X_{s}"], hashes, f"X_{s}") for s in ("train", "val")}
    y = {s: load_split(files, s, schema, hashes)[1] for s in ("train", "val", "test")}
    # the test split is kept raw (read once): through the fitted preprocessor, as the tester does
    # (the preprocessor is this process's own fresh file: loaded without a manifest check)
    preprocessor = joblib.load(files["preprocessor"])
    x["test"] = preprocessor.transform(load_split(files, "test", schema, hashes)[0]).astype("float32")
    sequence = prepared.sequence if kind == "text" else None  # SequenceColumns: a text column's reading
    out = []
    for layer in READERS:
        config = DNNConfig(
            architecture=kind,
            sequence_layer=layer,
            sequence_length=sequence.length if sequence else None,
            vocabulary_size=sequence.vocabulary_size if sequence else None,
            hidden_units=[64],
            conv_filters=[64] if kind == "text" else [32, 64],
            max_epochs=epochs,
            patience=max(3, epochs // 4),
        )
        model = build_dnn(x["train"].shape[1], "classification", len(schema.classes), config, seed)
        started = time.perf_counter()
        result = train_dnn(
            model,
            x["train"],
            y["train"].astype("float32"),
            x["val"],
            y["val"].astype("float32"),
            config,
            work / f"ck-{kind}-{seed}-{layer}",
            task="classification",
        )
        seconds = time.perf_counter() - started
        probabilities = np.asarray(model.predict_on_batch(x["test"]))
        out.append(
            {
                "data": kind,
                "rows": rows,
                "seed": seed,
                "reader": layer,
                "params": result.params,
                "epochs": result.epochs_trained,
                "train_seconds": round(seconds, 2),
                "seconds_per_epoch": round(seconds / max(result.epochs_trained, 1), 3),
                "val_accuracy": round(max(result.history.get("val_accuracy", [0.0])), 4),
                "test_accuracy": round(score("accuracy", y["test"], probabilities), 4),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def _cli(args: list[str]) -> tuple[dict[str, Any], float, int]:
    started = time.perf_counter()
    proc = subprocess.run(ml_expert_command(*args), capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 5):
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout), seconds, proc.returncode


def finetune_rows(seed: int, budget: float, work: Path, dataset: str, network: bool) -> dict[str, Any]:
    import pandas as pd

    work.mkdir(parents=True, exist_ok=True)
    by = FINETUNE_SETS[dataset]
    frame = pd.read_csv(datasets_dir() / f"{dataset}.csv").sort_values(by, kind="stable")
    cut = int(len(frame) * 0.6)
    first, second = work / "first.csv", work / "second.csv"
    frame.iloc[:cut].to_csv(first, index=False)
    frame.iloc[len(frame) - cut :].sample(frac=1.0, random_state=seed).to_csv(second, index=False)
    common = ["--json", "--memory", "embedded", "--budget", str(budget), "--seed", str(seed)]
    common.append("--dnn" if network else "--no-dnn")
    ws = work / f"ws-{seed}"
    released, released_seconds, _ = _cli(["run", str(first), "--workspace", str(ws), *common])
    scratch_ws = work / f"ws-{seed}-scratch"
    shutil.copytree(ws, scratch_ws)
    scratch, scratch_seconds, scratch_rc = _cli(["run", str(second), "--workspace", str(scratch_ws), *common])
    tuned, tuned_seconds, tuned_rc = _cli(
        ["run", str(second), "--workspace", str(ws), "--from", "production", *common]
    )
    run_dir = Path(tuned["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    training = training.get("value", training)
    metrics = json.loads((run_dir / "findings" / "metrics.json").read_text())
    metrics = metrics.get("value", metrics)
    board = {c["name"]: c for c in training["leaderboard"]}
    metric = "r2" if "r2" in tuned["metrics"] else "accuracy"
    fine_tuned = board.get("fine_tuned") or {}
    row = {
        "dataset": dataset,
        "sorted_by": by,
        "network": network,
        "rows_first": cut,
        "rows_new": cut,
        "seed": seed,
        "metric": metric,
        "released_model": released["chosen_model"],
        "released_on_first_sample_test": released["metrics"].get(metric),
        "released_on_new_test": (metrics.get("production_on_test") or {}).get("test_score"),
        "from_scratch_chosen": scratch["chosen_model"],
        "from_scratch_test": scratch["metrics"].get(metric),
        "from_scratch_run_seconds": round(scratch_seconds, 1),
        "from_scratch_released": scratch_rc == 0,
        "fine_tune_run_chosen": tuned["chosen_model"],
        "fine_tune_run_test": tuned["metrics"].get(metric),
        "fine_tune_run_seconds": round(tuned_seconds, 1),
        "fine_tune_run_released": tuned_rc == 0,
        "fine_tuned_val": fine_tuned.get("val_score"),
        "released_val": board["released"]["val_score"],
        "best_scratch_val": max(
            c["val_score"]
            for c in training["leaderboard"]
            if c.get("parent") is None and c["name"] != "dummy"
        ),
        "fine_tune_fit_seconds": fine_tuned.get("fit_seconds"),
        "fine_tune_how": fine_tuned.get("detail") or "no fine-tuned candidate",
        "scratch_fit_seconds": {
            c["name"]: c["fit_seconds"] for c in training["leaderboard"] if c.get("parent") is None
        },
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--text-rows", type=int, default=1200)
    parser.add_argument("--sequence-rows", type=int, default=900)
    parser.add_argument(
        "--budget", type=float, default=30.0, help="ml-expert's budget in the fine-tuning part"
    )
    parser.add_argument(
        "--parts", nargs="+", default=["readers", "finetune"], choices=["readers", "finetune"]
    )
    parser.add_argument(
        "--finetune-sets",
        nargs="+",
        default=list(FINETUNE_SETS),
        choices=list(FINETUNE_SETS),
        help="datasets of the fine-tuning part",
    )
    parser.add_argument(
        "--finetune-network", action="store_true", help="let the network train in the fine-tuning runs"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    recorder = Recorder(
        "networks", vars(args) | {"output": None}, list(argv if argv is not None else sys.argv[1:])
    )
    payload: dict[str, Any] = {"readers": [], "finetune": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seed in args.seeds:
            if "readers" in args.parts:
                payload["readers"] += reader_rows("text", args.text_rows, seed, args.epochs, work)
                payload["readers"] += reader_rows("sequence", args.sequence_rows, seed, args.epochs, work)
            if "finetune" in args.parts:
                for name in args.finetune_sets:
                    payload["finetune"].append(
                        finetune_rows(
                            seed, args.budget, work / f"ft-{name}-{seed}", name, args.finetune_network
                        )
                    )
    return recorder.save(payload, *([args.output] if args.output else []))


if __name__ == "__main__":
    print(main())
