"""AutoGluon on a training CSV, predictions for the test rows; runs in benchmarks/.venv-autogluon.

    .venv-autogluon/bin/python benchmarks/autogluon_worker.py TRAIN.csv TEST.csv PREDS.csv \
        --task T --seed S --budget B --path DIR

Imports nothing from ml_expert: AutoGluon's environment pins its own pandas.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from autogluon.tabular import TabularPredictor

TARGET = "target"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("preds")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    np.random.seed(args.seed)
    train, test = pd.read_csv(args.train), pd.read_csv(args.test)
    test = test.drop(columns=[TARGET], errors="ignore")
    problem = "regression" if args.task == "regression" else None
    predictor = TabularPredictor(label=TARGET, problem_type=problem, path=args.path, verbosity=0)
    predictor.fit(train, presets="medium_quality", time_limit=args.budget)
    out = pd.DataFrame({"prediction": np.asarray(predictor.predict(test))})
    if args.task == "classification":
        proba = predictor.predict_proba(test)
        for column in proba.columns:
            out[f"proba_{column}"] = proba[column].to_numpy()
    out.to_csv(args.preds, index=False)


if __name__ == "__main__":
    main()
