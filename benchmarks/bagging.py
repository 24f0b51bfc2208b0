"""A bag of k fold fits against one refit on all rows: what ships on small data? (issue #12)

`python benchmarks/bagging.py [--datasets caravan breast_cancer digits9] [--seeds 0 1 ...] [--folds 3 5 8]`

Per dataset and seed: a seeded, stratified 80/20 split (as benchmarks/quality.py); on the 80 %,
each family as ml-expert builds it (`make_pipeline`, its defaults, seeded) is fit once on every
row ("refit", what shipped before) and k times on all rows but one of k seeded folds
(`crossval.fold_ids`, as tools/selection/fold_bag.py builds the bag), the k fits' probabilities
averaged. Both are scored on the 20 %: ROC-AUC, log-loss, accuracy. Binary sets only: caravan (6 %
positives), breast cancer, and digits as "9 against the rest" (10 % positives), all numeric.
Reported per dataset and family: the mean refit score and the mean paired difference bag - refit
(log-loss: refit - bag, so positive is better for the bag) with how many seeds the bag won.
Results: results/bagging.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Recorder, datasets_dir  # noqa: E402

FAMILIES = ("linear", "hist_gradient_boosting", "lightgbm")


def binary(name: str) -> pd.DataFrame:
    """The binary task: caravan's Yes, digits' 9 against the rest, breast cancer as it is."""
    if name == "digits9":
        frame = pd.read_csv(datasets_dir() / "digits.csv")
        return frame.assign(target=(frame["target"] == 9).astype(int))
    frame = pd.read_csv(datasets_dir() / f"{name}.csv")
    if name == "caravan":
        frame["target"] = (frame["target"] == "Yes").astype(int)
    return frame


def measure(name: str, seed: int, folds: list[int]) -> list[dict]:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split

    from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame
    from ml_expert.tools.selection.candidates import make_pipeline
    from ml_expert.tools.selection.crossval import fold_ids

    frame = binary(name)
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame["target"])
    columns = [ColumnSpec(name=c, kind="numeric") for c in frame.columns if c != "target"]
    schema = InputSchema(task="classification", target="target", columns=columns, classes=[0, 1])
    x, y = to_model_frame(train, schema), train["target"].to_numpy()
    x_test, y_test = to_model_frame(test, schema), test["target"].to_numpy()

    def scores(p1: np.ndarray) -> dict[str, float]:
        clipped = np.clip(p1, 1e-7, 1 - 1e-7)
        return {
            "roc_auc": roc_auc_score(y_test, p1),
            "log_loss": log_loss(y_test, clipped),
            "accuracy": accuracy_score(y_test, p1 >= 0.5),
        }

    rows = []
    for family in FAMILIES:
        refit = make_pipeline(family, schema, seed, rows=len(y)).fit(x, y)
        row = {
            "dataset": name,
            "seed": seed,
            "family": family,
            "refit": scores(refit.predict_proba(x_test)[:, 1]),
        }
        for k in folds:
            ids = fold_ids("classification", y, seed, k)
            fits = [
                make_pipeline(family, schema, seed, rows=len(y)).fit(x[ids != f], y[ids != f])
                for f in range(k)
            ]
            row[f"bag{k}"] = scores(np.mean([m.predict_proba(x_test)[:, 1] for m in fits], axis=0))
        rows.append(row)
        print(
            f"{name} seed {seed} {family}: "
            + ", ".join(
                f"{key} roc_auc {row[key]['roc_auc']:.4f}"
                for key in row
                if key == "refit" or key.startswith("bag")
            ),
            flush=True,
        )
    return rows


def summary(rows: list[dict], folds: list[int]) -> list[dict]:
    out = []
    frame = pd.DataFrame(rows)
    for (name, family), group in frame.groupby(["dataset", "family"], sort=False):
        entry = {"dataset": name, "family": family, "seeds": len(group)}
        for metric, better in (("roc_auc", 1), ("log_loss", -1), ("accuracy", 1)):
            refit = np.array([r[metric] for r in group["refit"]])
            entry[f"refit_{metric}"] = round(float(refit.mean()), 4)
            for k in folds:
                diff = better * (np.array([r[metric] for r in group[f"bag{k}"]]) - refit)
                entry[f"bag{k}_{metric}_gain"] = round(float(diff.mean()), 4)
                entry[f"bag{k}_{metric}_wins"] = int((diff > 0).sum())
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["caravan", "breast_cancer", "digits9"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--folds", type=int, nargs="+", default=[3, 5, 8])
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    protocol = {
        "datasets": args.datasets,
        "seeds": args.seeds,
        "folds": args.folds,
        "families": list(FAMILIES),
    }
    recorder = Recorder("bagging", protocol, argv)
    rows = [row for name in args.datasets for seed in args.seeds for row in measure(name, seed, args.folds)]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    path = recorder.save({"rows": rows, "summary": summary(rows, args.folds)}, **kwargs)
    print(path)
    return path


if __name__ == "__main__":
    main()
