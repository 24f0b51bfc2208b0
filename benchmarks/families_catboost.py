"""Does CatBoost earn a place among ml-expert's boosting families? (issue #12)

`python benchmarks/families_catboost.py [--datasets iris wine] [--seed 0]` (needs `catboost`).

Per dataset in ../shared/datasets (label `target`): ml-expert's own data preparation
(`prepare_data`, `load_split`), then ONE seeded 5-fold CV of train + validation (`fold_ids`, as the
run's model selection builds it) on which every model is scored:

- hist_gradient_boosting and lightgbm exactly as ml-expert builds them (`make_pipeline`; LightGBM's
  rounds found once on the training split by `early_stopped_rounds` at the default 120 s budget, as
  `train_candidate` does, then fixed for every fold);
- catboost in the same pipeline (same ColumnTransformer, float32 cast) at fixed defaults:
  depth 6, learning rate 0.05, one thread (ml-expert's thread rule for LightGBM), seeded; its
  iteration count found the same way as LightGBM's: once on the training split, by early stopping
  (50 rounds) on a seeded 80/20 inner split, cap 1000, then fixed for every fold;
- linear and random_forest (ml-expert's other ensemble members), for the ensemble comparison only.

Reported: each model's fold scores (mean ± std), fit seconds per fold, CatBoost against the better
of HGB / LightGBM by ml-expert's own noise rule (2 standard errors of the paired fold differences,
`tools/selection/noise.py`; for classification also on log-loss, a proper score), and the greedy
ensemble (tools/selection/ensemble.py, cross-fitted: weights chosen on the other folds, log-loss
for classification) with and without CatBoost in the pool, compared by the same rule.
Results: results/families_catboost.json (rewritten after each dataset).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, datasets_dir, load_average, machine  # noqa: E402
from ml_expert.tools.data.prepare import load_split, prepare_data  # noqa: E402
from ml_expert.tools.scoring import predict_scores, primary_metric, score, sign  # noqa: E402
from ml_expert.tools.selection.baselines import fit  # noqa: E402
from ml_expert.tools.selection.boosting import early_stopped_rounds  # noqa: E402
from ml_expert.tools.selection.candidates import lightgbm_threads, make_pipeline  # noqa: E402
from ml_expert.tools.selection.crossval import fold_ids  # noqa: E402
from ml_expert.tools.selection.ensemble import cross_fitted  # noqa: E402
from ml_expert.tools.selection.noise import escalation  # noqa: E402

OUT = RESULTS / "families_catboost.json"
BUDGET = 120.0  # ml-expert's default budget: LightGBM's round cap comes from it
FOLDS = 5
CB_LEARNING_RATE = 0.05
CB_DEPTH = 6
CB_CAP = 1000
CB_PATIENCE = 50
MODELS = ("linear", "random_forest", "hist_gradient_boosting", "lightgbm", "catboost")
BOOSTERS = ("hist_gradient_boosting", "lightgbm")


def catboost_model(task: str, seed: int, rows: int, iterations: int):
    from catboost import CatBoostClassifier, CatBoostRegressor

    settings = {
        "iterations": iterations,
        "learning_rate": CB_LEARNING_RATE,
        "depth": CB_DEPTH,
        "random_seed": seed,
        "thread_count": lightgbm_threads(rows),
        "verbose": 0,
        "allow_writing_files": False,
    }
    if task == "classification":
        return CatBoostClassifier(**settings)
    return CatBoostRegressor(**settings)


def catboost_pipeline(schema, seed: int, rows: int, iterations: int) -> Pipeline:
    steps = make_pipeline("hist_gradient_boosting", schema, seed, rows=rows).steps[:-1]
    return Pipeline([*steps, ("model", catboost_model(schema.task, seed, rows, iterations))])


def catboost_rounds(schema, train: tuple[pd.DataFrame, np.ndarray], seed: int) -> tuple[int, float]:
    """Iterations by early stopping on a seeded 80/20 split of the training rows (train only)."""
    frame, y = train
    classification = schema.task == "classification"
    fit_idx, eval_idx = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y if classification else None
    )
    pre = Pipeline(make_pipeline("hist_gradient_boosting", schema, seed, rows=len(y)).steps[:-1])
    started = time.perf_counter()
    x_fit = pre.fit_transform(frame.iloc[fit_idx])
    x_eval = pre.transform(frame.iloc[eval_idx])
    model = catboost_model(schema.task, seed, len(y), CB_CAP)
    model.set_params(od_type="Iter", od_wait=CB_PATIENCE, use_best_model=True)
    model.fit(x_fit, y[fit_idx], eval_set=(x_eval, y[eval_idx]))
    return int(model.get_best_iteration()) + 1, time.perf_counter() - started


def build(name: str, schema, seed: int, rows: int, settings: dict):
    if name == "catboost":
        return catboost_pipeline(schema, seed, rows, settings["iterations"])
    return make_pipeline(name, schema, seed, rows=rows, params=settings.get("params"))


def one_dataset(path: Path, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_data(str(path), "target", seed, Path(tmp))
        schema = prepared.input_schema
        train = load_split(prepared.files, "train", schema, prepared.file_hashes)
        val = load_split(prepared.files, "val", schema, prepared.file_hashes)
    task = schema.task
    classification = task == "classification"
    n_classes = len(schema.classes or []) if classification else None
    metric, _ = primary_metric(task, None, n_classes)
    frame = pd.concat([train[0], val[0]], ignore_index=True)
    y = np.concatenate([train[1], val[1]])
    folds = fold_ids(task, y, seed, FOLDS)
    rows = len(train[1])

    settings: dict[str, dict] = {name: {} for name in MODELS}
    started = time.perf_counter()
    steps = make_pipeline("lightgbm", schema, seed, rows=rows).steps[:-1]
    lgb_rounds = early_stopped_rounds(Pipeline(steps), schema, train, seed, BUDGET)
    settings["lightgbm"] = {"params": lgb_rounds.params or None, "rule": lgb_rounds.rule}
    lgb_search = time.perf_counter() - started
    cb_iterations, cb_search = catboost_rounds(schema, train, seed)
    settings["catboost"] = {
        "iterations": cb_iterations,
        "rule": f"{cb_iterations} iterations at learning rate {CB_LEARNING_RATE}, depth {CB_DEPTH}: early "
        f"stopping ({CB_PATIENCE} rounds) on a seeded 80/20 split of the {rows} training rows, cap {CB_CAP}",
    }

    oof: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {}
    for name in MODELS:
        out, times = None, []
        for k in range(FOLDS):
            held = folds == k
            model = build(name, schema, seed, rows, settings[name])  # rows: as the run passes them
            times.append(fit(model, frame[~held], y[~held]))  # ml-expert's thread rule for small data
            part = predict_scores(model, frame[held])
            if out is None:
                out = np.zeros((len(y), *part.shape[1:]), dtype=np.float64)
            out[held] = part
        oof[name], seconds[name] = out, times
        print(f"  {path.stem} {name}: {np.mean(times):.2f} s/fit", flush=True)

    def folds_of(pred: np.ndarray) -> list[float]:
        return [round(score(metric, y[folds == k], pred[folds == k]), 6) for k in range(FOLDS)]

    models = {}
    for name in MODELS:
        per_fold = folds_of(oof[name])
        models[name] = {
            "mean": round(float(np.mean(per_fold)), 6),
            "std": round(float(np.std(per_fold, ddof=1)), 6),
            "folds": per_fold,
            "fit_seconds_per_fold": round(float(np.mean(seconds[name])), 3),
        }
        if classification:  # a proper score: tells apart models that tie on accuracy
            per_fold_loss = [score("log_loss", y[folds == k], oof[name][folds == k]) for k in range(FOLDS)]
            models[name]["log_loss_mean"] = round(float(np.mean(per_fold_loss)), 6)
            models[name]["log_loss_std"] = round(float(np.std(per_fold_loss, ddof=1)), 6)
    models["lightgbm"]["rounds_rule"] = settings["lightgbm"]["rule"]
    models["lightgbm"]["round_search_seconds"] = round(lgb_search, 3)
    models["catboost"]["rounds_rule"] = settings["catboost"]["rule"]
    models["catboost"]["round_search_seconds"] = round(cb_search, 3)

    best = max(BOOSTERS, key=lambda n: sign(metric) * models[n]["mean"])
    vs_best = escalation(
        metric, y, oof[best], oof["catboost"], folds, seed, simple=best, candidate="catboost"
    )

    vs_best_log_loss = None
    if classification:  # the same rule on log-loss, against the booster with the lower log-loss
        best_ll = min(BOOSTERS, key=lambda n: models[n]["log_loss_mean"])
        vs_best_log_loss = escalation(
            "log_loss", y, oof[best_ll], oof["catboost"], folds, seed, simple=best_ll, candidate="catboost"
        ).model_dump()

    chosen_by = "log_loss" if classification else metric

    def scorer(yy: np.ndarray, predictions: np.ndarray) -> float:
        if predictions.ndim == 2:
            predictions = predictions / predictions.sum(axis=1, keepdims=True)
        return sign(chosen_by) * score(chosen_by, yy, predictions)

    ensembles = {}
    pools = {
        "without_catboost": [n for n in MODELS if n != "catboost"],
        "with_catboost": list(MODELS),
    }
    blended = {}
    for label, pool in pools.items():
        pool = sorted(pool, key=lambda n: -sign(metric) * models[n]["mean"])  # best first, as the run does
        blended[label] = cross_fitted(pool, [oof[n] for n in pool], y, folds, scorer)
        per_fold = folds_of(blended[label])
        ensembles[label] = {
            "pool": pool,
            "mean": round(float(np.mean(per_fold)), 6),
            "std": round(float(np.std(per_fold, ddof=1)), 6),
            "folds": per_fold,
        }
    added = escalation(
        metric,
        y,
        blended["without_catboost"],
        blended["with_catboost"],
        folds,
        seed,
        simple="ensemble without catboost",
        candidate="ensemble with catboost",
    )
    return {
        "dataset": path.stem,
        "task": task,
        "metric": metric,
        "rows_cv": len(y),
        "features_out": prepared.n_features_out,
        "models": models,
        "catboost_vs_best_booster": vs_best.model_dump(),
        "catboost_vs_best_booster_log_loss": vs_best_log_loss,
        "ensembles": ensembles,
        "ensemble_catboost_added": added.model_dump(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="*", default=None, help="names (default: all CSVs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import catboost

    paths = sorted(datasets_dir().glob("*.csv"))
    if args.datasets:
        by_name = {p.stem: p for p in paths}
        paths = [by_name[n] for n in args.datasets]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = {r["dataset"]: r for r in previous.get("rows", [])}
    for path in paths:
        load = load_average()
        t0 = time.perf_counter()
        print(path.stem, flush=True)
        row = one_dataset(path, args.seed)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["load_before"], row["load_after"] = load, load_average()
        rows[path.stem] = row
        report = {
            "benchmark": "families_catboost",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/families_catboost.py",
            "seed": args.seed,
            "folds": FOLDS,
            "versions": {"catboost": catboost.__version__, "python": platform.python_version()},
            "machine": machine(),
            "rows": [rows[k] for k in sorted(rows)],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
