"""One competitor fit on a training CSV and asked for the test rows; run as a child process so its
wall time and peak memory are measured the same way as ml-expert's.

    python benchmarks/systems.py {hgb,rf,flaml} TRAIN.csv TEST.csv PREDS.csv --task T --seed S --budget B

PREDS.csv has `prediction` and, for classifiers, one `proba_<class>` column per class. This file
runs in ml-expert's environment; AutoGluon has its own worker (autogluon_worker.py) in its own venv.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

TARGET = "target"


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[TARGET], errors="ignore")


def _tree_pipeline(estimator, frame: pd.DataFrame):
    """What a scikit-learn user writes: ordinal-encode the text columns, pass numbers through.

    Trees split ordinal codes fine and both HistGradientBoosting and RandomForest (scikit-learn
    >= 1.4) take NaN as is, so no imputation is needed; unseen categories become NaN.
    """
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    columns = make_column_transformer(
        (encoder, make_column_selector(dtype_include=["object", "string", "category"])),
        remainder="passthrough",
    )
    return make_pipeline(columns, estimator)


def fit_predict(system: str, train: pd.DataFrame, test: pd.DataFrame, task: str, seed: int, budget: float):
    x, y = _features(train), train[TARGET]
    x_test = _features(test)
    classification = task == "classification"
    if system == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        model = _tree_pipeline(cls(random_state=seed), x)
    elif system == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classification else RandomForestRegressor
        model = _tree_pipeline(cls(n_estimators=300, n_jobs=-1, random_state=seed), x)
    elif system == "flaml":
        from flaml import AutoML

        model = AutoML()
        for column in x.columns:
            if x[column].dtype == object or str(x[column].dtype) == "str":
                x[column] = x[column].astype("category")
                x_test[column] = pd.Categorical(x_test[column], categories=x[column].cat.categories)
        model.fit(x, y, task=task, time_budget=budget, seed=seed, verbose=0)
    else:
        raise SystemExit(f"unknown system {system!r}")
    if system != "flaml":
        model.fit(x, y)
    out = pd.DataFrame({"prediction": np.asarray(model.predict(x_test))})
    if classification:
        proba = np.asarray(model.predict_proba(x_test))
        classes = model.classes_
        for i, cls_name in enumerate(classes):
            out[f"proba_{cls_name}"] = proba[:, i]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("preds")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args()
    train, test = pd.read_csv(args.train), pd.read_csv(args.test)
    fit_predict(args.system, train, test, args.task, args.seed, args.budget).to_csv(args.preds, index=False)


if __name__ == "__main__":
    main()
