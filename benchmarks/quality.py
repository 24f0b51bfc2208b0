"""Quality at equal time: ml-expert against what a user would run instead, on every shared dataset.

For each dataset and seed: a seeded 80/20 split (stratified for classification); the 80% goes to
  ml-expert   `ml-expert run TRAIN.csv --budget B --json` in a fresh workspace, then
              `ml-expert predict RUN TEST.csv --proba` on its exported deployment package
  hgb         scikit-learn HistGradientBoosting* with defaults
  rf          RandomForest* with 300 trees
  flaml       FLAML AutoML.fit(time_budget=B)
  autogluon   TabularPredictor(presets="medium_quality", time_limit=B) in benchmarks/.venv-autogluon
and each is scored on the 20%. Every system is a child process: wall seconds and peak RSS are
measured the same way for all. digits is also run with `--modality image`.

    python benchmarks/quality.py --budget 60 --seeds 0 1 2              # the issue's protocol
    python benchmarks/quality.py --smoke --out-dir /tmp/x               # seconds, for the test suite
    python benchmarks/quality.py --systems ml-expert --ml-expert-flags=--tune --update \
        --update-from quality --name quality-tune     # ml-expert with --tune beside quality.json's others
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import autogluon_env  # noqa: E402
from benchmarks.common import RESULTS, Recorder, datasets_dir, ml_expert_command, run_child, work_dir  # noqa: E402

TARGET = "target"
SYSTEMS = ("ml-expert", "hgb", "rf", "flaml", "autogluon")
AUTOML = ("ml-expert", "flaml", "autogluon")
IMBALANCE_FOR_BALANCED = 3.0  # --scoring balanced: balanced accuracy from this class ratio on
# The two conditions: every system scored by the default metric (accuracy, R²), and by each
# competitor's own default (FLAML: ROC-AUC on a binary target, log-loss on a multiclass one, R²;
# AutoGluon: accuracy, RMSE, which ranks as R² on the same rows).
SCORINGS = ("default", "roc_auc", "log_loss", "balanced")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse"})
RANK_TARGET = 1.5


def task_of(y: pd.Series) -> str:
    from ml_expert.tools.data.task import detect_task

    return detect_task(y)[0]


def primary_metric(task: str, y: pd.Series, scoring: str = "default") -> str:
    """Rank by R² (regression) or accuracy (`default`); `roc_auc`: ROC-AUC on a binary target
    (FLAML's default); `log_loss`: log-loss on a multiclass target (FLAML's default there);
    `balanced`: balanced accuracy when the classes are imbalanced >= 3:1."""
    if task == "regression":
        return "r2"
    counts = y.value_counts()
    if scoring == "roc_auc" and len(counts) == 2:
        return "roc_auc"
    if scoring == "log_loss" and len(counts) > 2:
        return "log_loss"
    if scoring == "balanced" and counts.max() / counts.min() >= IMBALANCE_FOR_BALANCED:
        return "balanced_accuracy"
    return "accuracy"


def split(frame: pd.DataFrame, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    stratify = frame[TARGET] if task == "classification" else None
    return train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)


def _label(value: Any) -> str:
    """Labels compared as text: '1', 1 and 1.0 are the same class whichever system wrote them."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text[:-2] if text.endswith(".0") and text[:-2].lstrip("-").isdigit() else text


def better_up(metric: str, value: float) -> float:
    """The value on a higher-is-better scale (log-loss and RMSE negated), for ranks and gaps."""
    return -value if metric in LOWER_IS_BETTER else value


def score(task: str, y_true: pd.Series, preds: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    from sklearn import metrics

    if task == "regression":
        predicted = preds["prediction"].astype(float).to_numpy()
        truth = y_true.astype(float).to_numpy()
        return {
            "r2": float(metrics.r2_score(truth, predicted)),
            "rmse": float(math.sqrt(metrics.mean_squared_error(truth, predicted))),
        }
    truth = [_label(v) for v in y_true]
    predicted = [_label(v) for v in preds["prediction"]]
    out = {
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(truth, predicted)),
    }
    proba = {_label(c[len("proba_") :]): c for c in preds.columns if c.startswith("proba_")}
    if all(c in proba for c in classes):  # every system writes one probability column per class
        matrix = preds[[proba[c] for c in classes]].to_numpy(float)
        matrix = matrix / matrix.sum(axis=1, keepdims=True)  # float32 exports: sums off by ~1e-7
        out["log_loss"] = float(metrics.log_loss(truth, matrix, labels=classes))
    if len(classes) == 2:
        positive = classes[1]
        out["roc_auc"] = (
            float(metrics.roc_auc_score([t == positive for t in truth], preds[proba[positive]]))
            if positive in proba
            else float("nan")
        )
    else:
        out["f1_macro"] = float(metrics.f1_score(truth, predicted, average="macro"))
    return out


def run_system(
    system: str,
    task: str,
    train_csv: Path,
    test_csv: Path,
    cell: Path,
    seed: int,
    budget: float,
    extra: list[str],
    ml_budget: float | None = None,
) -> dict[str, Any]:
    """Fit one system in a child and return its predictions with wall time and peak memory."""
    preds = cell / f"{system}.csv"
    row: dict[str, Any] = {"system": system}
    timeout = budget * 10 + 300
    if system.startswith("ml-expert"):
        ws = cell / f"ws-{system}"
        shutil.rmtree(ws, ignore_errors=True)
        cmd = ml_expert_command(
            "run", str(train_csv), "--target", TARGET, "--seed", str(seed),
            "--budget", str(ml_budget or budget), "--json", "--workspace", str(ws), *extra,
        )  # fmt: skip
        fit = run_child(cmd, timeout=timeout)
        row.update(fit_seconds=fit.wall_seconds, wall_seconds=fit.wall_seconds, peak_rss_mb=fit.peak_rss_mb)
        try:
            outcome = json.loads(fit.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            outcome = {"ok": False, "error": fit.stderr[-500:]}
        row.update(
            chosen_model=outcome.get("chosen_model"),
            run_status=outcome.get("status"),
            exit_code=fit.returncode,
        )
        if not outcome.get("ok"):
            row["error"] = outcome.get("error") or outcome.get("reason") or f"exit {fit.returncode}"
            return row
        pred = run_child(
            ml_expert_command("predict", outcome["run_dir"], str(test_csv), "--output", str(preds), "--proba")
            if task == "classification"
            else ml_expert_command("predict", outcome["run_dir"], str(test_csv), "--output", str(preds)),
            timeout=600,
        )
        row.update(
            predict_seconds=pred.wall_seconds,
            wall_seconds=fit.wall_seconds + pred.wall_seconds,
            peak_rss_mb=max(fit.peak_rss_mb, pred.peak_rss_mb),
        )
        if pred.returncode != 0:
            row["error"] = f"predict exited {pred.returncode}: {pred.stderr[-300:]}"
            return row
    elif system == "autogluon":
        cmd = [
            str(autogluon_env.PYTHON), str(Path(__file__).with_name("autogluon_worker.py")),
            str(train_csv), str(test_csv), str(preds), "--task", task, "--seed", str(seed),
            "--budget", str(budget), "--path", str(cell / "autogluon-models"),
        ]  # fmt: skip
        child = run_child(cmd, timeout=timeout)
        row.update(wall_seconds=child.wall_seconds, peak_rss_mb=child.peak_rss_mb, exit_code=child.returncode)
        shutil.rmtree(cell / "autogluon-models", ignore_errors=True)
        if child.returncode != 0:
            row["error"] = child.stderr.strip().splitlines()[-1][-300:] if child.stderr.strip() else "failed"
            return row
    else:
        cmd = [
            sys.executable, str(Path(__file__).with_name("systems.py")), system,
            str(train_csv), str(test_csv), str(preds),
            "--task", task, "--seed", str(seed), "--budget", str(budget),
        ]  # fmt: skip
        child = run_child(cmd, timeout=timeout)
        row.update(wall_seconds=child.wall_seconds, peak_rss_mb=child.peak_rss_mb, exit_code=child.returncode)
        if child.returncode != 0:
            row["error"] = child.stderr.strip().splitlines()[-1][-300:] if child.stderr.strip() else "failed"
            return row
    row["preds"] = str(preds)
    return row


def run_cell(
    name: str,
    frame: pd.DataFrame,
    seed: int,
    budget: float,
    systems: list[str],
    ml_extra: list[str] = (),
    ml_budget: float | None = None,
    tell_metric: bool = False,
    scoring: str = "default",
) -> list[dict]:
    task = task_of(frame[TARGET])
    train, test = split(frame, task, seed)
    cell = work_dir() / "quality" / f"{name}-s{seed}"
    shutil.rmtree(cell, ignore_errors=True)
    cell.mkdir(parents=True)
    train_csv, test_csv = cell / "train.csv", cell / "test.csv"
    train.to_csv(train_csv, index=False)
    test.drop(columns=[TARGET]).to_csv(test_csv, index=False)
    classes = sorted({_label(v) for v in frame[TARGET]}) if task == "classification" else []
    metric = primary_metric(task, frame[TARGET], scoring)
    if tell_metric:  # the user says which metric they are scored on (`--metric`)
        ml_extra = [*ml_extra, "--metric", metric]
    jobs = [(s, list(ml_extra) if s == "ml-expert" else []) for s in systems]
    if name == "digits" and "ml-expert" in systems:
        jobs.append(("ml-expert-image", [*ml_extra, "--modality", "image"]))
    rows = []
    for system, extra in jobs:
        if system == "autogluon" and not autogluon_env.MARKER.exists():
            continue
        row = run_system(system, task, train_csv, test_csv, cell, seed, budget, extra, ml_budget)
        if "preds" in row:
            preds = pd.read_csv(row.pop("preds"))
            if len(preds) != len(test):
                row["error"] = f"{len(preds)} predictions for {len(test)} rows"
            else:
                row["metrics"] = score(task, test[TARGET], preds, classes)
        row.update(dataset=name, seed=seed, task=task, primary_metric=metric, rows_train=len(train))
        rows.append(row)
        shown = row.get("metrics", {}).get(metric, row.get("error"))
        print(
            f"{name} seed {seed} {system}: {metric}={shown} in {row.get('wall_seconds', 0):.1f} s", flush=True
        )
    shutil.rmtree(cell, ignore_errors=True)
    return rows


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Mean and spread per dataset and system, ranks, and the issue's targets met or not."""
    table = pd.DataFrame([{**r, **r.get("metrics", {})} for r in rows if "metrics" in r])
    summary: dict[str, Any] = {"per_dataset": [], "ranks": {}, "automl_ranks": {}, "targets": {}}
    if table.empty:
        return summary
    means: dict[str, dict[str, float]] = {}
    for (dataset, system), group in table.groupby(["dataset", "system"], sort=True):
        metric = group["primary_metric"].iloc[0]
        entry = {"dataset": dataset, "system": system, "primary_metric": metric, "seeds": len(group)}
        for column in ("accuracy", "balanced_accuracy", "roc_auc", "f1_macro", "log_loss", "r2", "rmse",
                       "wall_seconds", "peak_rss_mb"):  # fmt: skip
            if column in group and group[column].notna().any():
                entry[column] = float(group[column].mean())
                entry[f"{column}_std"] = float(group[column].std(ddof=1)) if len(group) > 1 else 0.0
        means.setdefault(dataset, {})[system] = better_up(metric, entry[metric])
        summary["per_dataset"].append(entry)
    # A system that ran on a dataset and never produced a score ranks last there, rather than vanishing.
    for row in rows:
        if "metrics" not in row and row["system"] not in means.get(row["dataset"], {}):
            means.setdefault(row["dataset"], {})[row["system"]] = -math.inf

    def mean_ranks(names: tuple[str, ...] | None) -> dict[str, float]:
        ranks: dict[str, list[float]] = {}
        for scores in means.values():
            chosen = {s: v for s, v in scores.items() if (names is None and s != "ml-expert-image") or
                      (names is not None and s in names)}  # fmt: skip
            if names is not None and len(chosen) < len(names):
                continue  # a rank among the three needs all three
            ranked = pd.Series(chosen).rank(ascending=False, method="average")
            for system, rank in ranked.items():
                ranks.setdefault(system, []).append(float(rank))
        return {s: round(float(np.mean(v)), 3) for s, v in sorted(ranks.items())}

    summary["ranks"] = mean_ranks(None)
    automl = mean_ranks(AUTOML)
    summary["automl_ranks"] = automl
    if automl:
        mine = automl.get("ml-expert")
        summary["targets"]["automl_rank"] = {
            "target": f"ml-expert's mean rank among ml-expert, FLAML and AutoGluon is <= {RANK_TARGET}",
            "value": mine,
            "met": mine is not None and mine <= RANK_TARGET,
            "datasets": sum(1 for s in means.values() if all(n in s for n in AUTOML)),
        }
    else:
        summary["targets"]["automl_rank"] = {
            "target": f"ml-expert's mean rank among ml-expert, FLAML and AutoGluon is <= {RANK_TARGET}",
            "value": None,
            "met": None,
            "why": "not all three systems produced scores on any dataset",
        }
    gaps = {
        d: (round(s["ml-expert"] - s["hgb"], 4) if math.isfinite(s["ml-expert"]) else None)
        for d, s in means.items()
        if "ml-expert" in s and "hgb" in s and math.isfinite(s["hgb"])
    }
    summary["targets"]["vs_hgb"] = {
        "target": "ml-expert is never more than 0.005 below the HistGradientBoosting default (log-loss: "
        "above)",
        "gaps": gaps,
        "worst": None if not gaps or None in gaps.values() else min(gaps.values()),
        "met": bool(gaps) and None not in gaps.values() and min(gaps.values()) >= -0.005,
    }
    if "digits" in means and "ml-expert-image" in means["digits"]:
        image = [
            e for e in summary["per_dataset"] if (e["dataset"], e["system"]) == ("digits", "ml-expert-image")
        ]
        value = image[0].get("accuracy", -math.inf) if image else -math.inf  # whatever the ranking metric
        summary["targets"]["digits_image"] = {
            "target": "digits with --modality image: accuracy >= 0.97",
            "value": round(value, 4) if math.isfinite(value) else None,
            "met": value >= 0.97,
        }
    return summary


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--budget", type=float, default=60.0, help="B seconds, for ml-expert, FLAML, AutoGluon"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", help="names without .csv (default: all)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--no-autogluon-install", action="store_true", help="skip AutoGluon if not installed")
    parser.add_argument(
        "--smoke", action="store_true", help="iris, one seed, tiny budgets: checks that it works"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--name", default="quality", help="results file name")
    parser.add_argument(
        "--update",
        action="store_true",
        help="rerun only --systems and keep the other systems' rows of results/<name>.json (same "
        "budget, seeds and datasets): after a change to ml-expert, its competitors need no rerun",
    )
    parser.add_argument(
        "--ml-expert-flags",
        default="",
        help="extra flags for every `ml-expert run`, one string (e.g. '--tune'); recorded in the protocol",
    )
    parser.add_argument(
        "--tell-metric",
        action="store_true",
        help="pass `--metric PRIMARY` (the metric each dataset is scored on) to ml-expert; recorded",
    )
    parser.add_argument(
        "--scoring",
        choices=SCORINGS,
        default="default",
        help="the metric every system is ranked by: default (accuracy, R²), roc_auc (binary targets; "
        "FLAML's default), log_loss (multiclass targets; FLAML's default), balanced (balanced accuracy "
        "from a 3:1 class ratio); kept rows are re-ranked",
    )
    parser.add_argument(
        "--update-from",
        help="with --update: keep the other systems' rows of results/<this>.json instead of <name>.json "
        "(e.g. write quality-tune.json from quality.json's competitors)",
    )
    parser.add_argument(
        "--keep-other-cells",
        action="store_true",
        help="with --update: also keep the rerun systems' rows of the datasets and seeds not rerun; the "
        "stored protocol's datasets and seeds stay (a change that touches one dataset, measured alone)",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    ml_extra: list[str] = args.ml_expert_flags.split()
    ml_budget = None
    if args.smoke:  # competitors get 1 s; ml-expert skips its network and gets what its baselines need
        args.budget, args.seeds, args.datasets = 1.0, [0], args.datasets or ["iris"]
        ml_extra, ml_budget = ["--no-dnn", *ml_extra], 30.0
    folder = datasets_dir()
    names = args.datasets or sorted(p.stem for p in folder.glob("*.csv"))
    autogluon_note = "not requested"
    if "autogluon" in args.systems:
        if args.no_autogluon_install or args.smoke:
            ok = autogluon_env.MARKER.exists()
            autogluon_note = autogluon_env.MARKER.read_text().strip() if ok else "not installed; not run"
        else:
            ok, autogluon_note = autogluon_env.ensure()
            if not ok:
                autogluon_note = f"not run: install failed ({autogluon_note})"
    protocol = {
        "budget_seconds": args.budget,
        "seeds": args.seeds,
        "datasets": names,
        "systems": args.systems,
        "split": "80/20, seeded, stratified for classification",
        "autogluon": autogluon_note,
        "ml_expert_budget_seconds": ml_budget or args.budget,
        "ml_expert_flags": ml_extra,
        "ml_expert_told_metric": args.tell_metric,
        "scoring": args.scoring,
        "smoke": args.smoke,
        "full_protocol": not args.smoke
        and args.budget == 60.0
        and sorted(args.seeds) == [0, 1, 2]
        and args.datasets is None,
    }
    kept: list[dict] = []
    if args.update:
        previous = json.loads((args.out_dir / f"{args.update_from or args.name}.json").read_text())
        old = previous["protocol"]
        if (
            old["budget_seconds"] != args.budget
            or not set(args.seeds) <= set(old["seeds"])
            or not set(names) <= set(old["datasets"])
        ):
            raise SystemExit("--update needs the run's budget and a subset of its seeds and datasets")
        kept = [r for r in previous["rows"] if r["system"] not in args.systems and not (
            r["system"] == "ml-expert-image" and "ml-expert" in args.systems)
            and r["dataset"] in names and r["seed"] in args.seeds]  # fmt: skip
        full = protocol["full_protocol"]
        if args.keep_other_cells:
            if old.get("scoring", "default") != args.scoring:
                raise SystemExit("--keep-other-cells needs the stored run's --scoring")
            rerun = {(n, seed) for n in names for seed in args.seeds}
            kept += [r for r in previous["rows"] if (r["dataset"], r["seed"]) not in rerun]
            full = old["budget_seconds"] == 60.0 and sorted(old["seeds"]) == [0, 1, 2] and not args.smoke
            protocol.update(datasets=old["datasets"], seeds=old["seeds"])
        cells = {"cells_rerun": {"datasets": names, "seeds": args.seeds}} if args.keep_other_cells else {}
        protocol.update(
            systems=sorted({r["system"] for r in kept} | set(args.systems) - {"ml-expert-image"}),
            autogluon=old.get("autogluon"),
            full_protocol=old.get("full_protocol", False) and full,
            updated={
                "rerun": args.systems,
                "kept_rows_from": {"command": previous["command"], "date": previous["date"]},
                **cells,
            },
        )
    recorder = Recorder(args.name, protocol, argv, script="quality")
    rows: list[dict] = list(kept)
    for name in names:
        frame = pd.read_csv(folder / f"{name}.csv")
        metric = primary_metric(task_of(frame[TARGET]), frame[TARGET], args.scoring)
        for row in rows:  # kept rows are ranked by this run's scoring (their metrics hold every score)
            if row["dataset"] == name:
                row["primary_metric"] = metric
        for seed in args.seeds:
            rows.extend(
                run_cell(
                    name,
                    frame,
                    seed,
                    args.budget,
                    args.systems,
                    ml_extra,
                    ml_budget,
                    args.tell_metric,
                    args.scoring,
                )
            )
    return recorder.save({"rows": rows, "summary": summarise(rows)}, args.out_dir)


if __name__ == "__main__":
    print(main())
