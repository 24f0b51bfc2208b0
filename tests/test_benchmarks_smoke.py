"""Smoke versions of every benchmark (tiny data and budgets): they keep running and their raw
results hold the figures report.py needs. Timing targets are not asserted here; the benchmarks
themselves (`make bench`) measure them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not an installed package

from benchmarks import bagging, inference, overhead, quality, report, scale, startup  # noqa: E402

# rf differs from hgb by its estimator only; FLAML comes with the bench extra (`make bench-smoke`),
# which the plain test install does not have. AutoGluon needs its own venv (make bench-install).
SMOKE_SYSTEMS = ["ml-expert", "hgb"] + (["flaml"] if importlib.util.find_spec("flaml") else [])


@pytest.fixture()
def bench_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    monkeypatch.setenv("ML_EXPERT_BENCH_WORK", str(work))
    monkeypatch.delenv("REDIS_URL", raising=False)  # embedded memory: no shared state between tests
    return work


def _load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    assert doc["machine"]["cores"] >= 1 and len(doc["load_before"]) == 3
    assert doc["command"].startswith(f"python benchmarks/{doc['benchmark'].split('-')[0]}.py")
    return doc


def test_quality_smoke_scores_every_system_on_the_held_out_rows(bench_work: Path, tmp_path: Path) -> None:
    out = quality.main(
        ["--smoke", "--systems", *SMOKE_SYSTEMS, "--out-dir", str(tmp_path), "--name", "quality-x"]
    )
    doc = _load(out)
    rows = {r["system"]: r for r in doc["rows"]}
    assert set(rows) == set(SMOKE_SYSTEMS), [r.get("error") for r in doc["rows"]]
    for system, row in rows.items():
        assert "error" not in row, (system, row.get("error"))
        assert row["rows_train"] == 120 and row["wall_seconds"] > 0 and row["peak_rss_mb"] > 50
        # ml-expert and HGB are deterministic; FLAML searches for 1 s of wall time, which on two busy
        # cores can end on a poor model (0.67 seen here): for it the smoke checks a valid score.
        floor = 0.0 if system == "flaml" else 0.8
        assert floor <= row["metrics"]["accuracy"] <= 1.0, (system, row["metrics"])
        assert {"balanced_accuracy", "f1_macro"} <= set(row["metrics"])
    assert rows["ml-expert"]["predict_seconds"] > 0 and rows["ml-expert"]["run_status"] == "finished"
    assert doc["summary"]["ranks"] and "iris" in doc["summary"]["targets"]["vs_hgb"]["gaps"]
    assert not doc["protocol"]["full_protocol"] and not list(bench_work.glob("quality/*"))


def test_quality_scoring_matches_labels_written_as_text_or_numbers() -> None:
    import pandas as pd

    preds = pd.DataFrame(
        {"prediction": [1.0, 0.0, 1.0], "proba_0": [0.2, 0.9, 0.4], "proba_1": [0.8, 0.1, 0.6]}
    )
    got = quality.score("classification", pd.Series(["1", "0", "0"]), preds, ["0", "1"])
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["roc_auc"] == 1.0
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.9, 0.4])))
    three = pd.DataFrame({"prediction": ["a", "b", "c"], "proba_a": [0.7, 0.2, 0.1],
                          "proba_b": [0.2, 0.6, 0.3], "proba_c": [0.1, 0.2, 0.6]})  # fmt: skip
    got = quality.score("classification", pd.Series(["a", "b", "a"]), three, ["a", "b", "c"])
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.6, 0.1])))
    assert quality.primary_metric("classification", pd.Series(list("abcab")), "log_loss") == "log_loss"
    assert quality.primary_metric("classification", pd.Series(list("abab")), "log_loss") == "accuracy"
    reg = quality.score(
        "regression", pd.Series([1.0, 2.0, 3.0]), pd.DataFrame({"prediction": [1.0, 2.0, 4.0]}), []
    )
    assert reg["rmse"] == pytest.approx(math.sqrt(1 / 3)) and reg["r2"] == pytest.approx(0.5)


def test_quality_ranks_and_targets_follow_the_scores() -> None:
    rows = []
    for dataset, scores in {"a": (0.90, 0.80, 0.85, 0.91), "b": (0.70, 0.75, 0.60, 0.72)}.items():
        for system, value in zip(("ml-expert", "flaml", "autogluon", "hgb"), scores, strict=True):
            metrics = {"accuracy": value}
            rows.append({"dataset": dataset, "system": system, "seed": 0, "primary_metric": "accuracy",
                         "metrics": metrics, "wall_seconds": 1.0, "peak_rss_mb": 1.0})  # fmt: skip
    summary = quality.summarise(rows)
    assert summary["automl_ranks"] == {"autogluon": 2.5, "flaml": 2.0, "ml-expert": 1.5}
    assert summary["targets"]["automl_rank"]["met"] is True
    assert summary["targets"]["vs_hgb"]["gaps"] == {"a": -0.01, "b": -0.02}
    assert summary["targets"]["vs_hgb"]["met"] is False
    # log-loss: lower is better, for the ranks and the gap to HGB alike
    lossy = [{**r, "primary_metric": "log_loss", "metrics": {"log_loss": 1 - r["metrics"]["accuracy"]}}
             for r in rows]  # fmt: skip
    summary_loss = quality.summarise(lossy)
    assert summary_loss["automl_ranks"] == {"autogluon": 2.5, "flaml": 2.0, "ml-expert": 1.5}
    assert summary_loss["targets"]["vs_hgb"]["gaps"] == {"a": -0.01, "b": -0.02}
    failed = [*rows, {"dataset": "c", "system": "ml-expert", "seed": 0, "error": "exit 5"}]
    failed += [{**r, "dataset": "c"} for r in rows if r["dataset"] == "a" and r["system"] != "ml-expert"]
    summary = quality.summarise(failed)
    assert summary["automl_ranks"]["ml-expert"] == pytest.approx((1.5 * 2 + 3) / 3)
    assert summary["targets"]["vs_hgb"]["gaps"]["c"] is None and summary["targets"]["vs_hgb"]["met"] is False


def test_overhead_and_inference_smoke_on_the_same_run(bench_work: Path, tmp_path: Path) -> None:
    doc = _load(overhead.main(["--smoke", "--keep", "--out-dir", str(tmp_path)]))
    pair = doc["pairs"][0]
    assert pair["graph"]["status"] == "finished" and pair["plain"]["status"] == "finished"
    assert pair["graph"]["chosen"] == pair["plain"]["chosen"] and doc["summary"]["same_model"]
    assert {"data_preparation", "model_selection", "validation", "deployment"} <= set(pair["graph"]["steps"])
    assert pair["plain"]["exports_passed"] == pair["plain"]["exports"] >= 2
    assert doc["summary"]["ratio_process"] > 0 and "imports" in doc["summary"]["difference_by_node"]

    (run_dir,) = (bench_work / "overhead" / "graph-0" / "runs").iterdir()
    doc = _load(inference.main(["--smoke", "--run-dir", str(run_dir), "--out-dir", str(tmp_path)]))
    formats = {r["format"].split(" ")[0]: r for r in doc["rows"]}
    assert "deployment" in formats and any(f.endswith("/onnx") for f in formats)
    assert any(f.endswith("/joblib") for f in formats)
    for row in doc["rows"]:
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["rows_per_second"] > 0 and row["calls"] == 20


def test_scale_smoke_and_growth_exponent(bench_work: Path, tmp_path: Path) -> None:
    doc = _load(scale.main(["--smoke", "--out-dir", str(tmp_path)]))
    (row,) = doc["rows"]
    assert row["status"] == "finished" and row["rows"] == 300 and 50 < row["peak_rss_mb"] < 3 * 1024
    assert doc["targets"]["memory"]["met"] is True and doc["targets"]["time_1m"]["met"] is None
    assert scale.growth_exponent([1_000, 10_000, 100_000], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert scale.growth_exponent([1_000, 4_000], [3.0, 6.0]) == pytest.approx(0.5)
    assert scale.growth_exponent([1_000], [3.0]) is None


def test_startup_smoke_and_report(bench_work: Path, tmp_path: Path) -> None:
    doc = _load(startup.main(["--smoke", "--out-dir", str(tmp_path)]))
    assert [r["command"] for r in doc["rows"]] == [
        "ml-expert --help",
        "ml-expert memory list",
        "ml-expert status",
    ]
    assert all(r["heavy_imports"] == [] for r in doc["rows"]), doc["rows"]
    text = report.render(tmp_path).split("## ")
    section = next(s for s in text if s.startswith("Start-up"))
    assert "python benchmarks/startup.py --smoke" in section and "Load averages" in section
    assert next(s for s in text if s.startswith("Quality")).strip().endswith("does not exist.")


def test_bagging_smoke_and_report(tmp_path: Path) -> None:
    """benchmarks/bagging.py, the evidence for the fold bag (tools/selection/fold_bag.py): one seed."""
    doc = _load(
        bagging.main(
            ["--datasets", "breast_cancer", "--seeds", "0", "--folds", "3", "--out-dir", str(tmp_path)]
        )
    )
    assert [r["family"] for r in doc["rows"]] == list(bagging.FAMILIES)
    row = doc["rows"][0]
    assert 0.9 < row["refit"]["roc_auc"] <= 1 and 0.9 < row["bag3"]["roc_auc"] <= 1
    assert row["bag3"] != row["refit"]  # three fits on 2/3 of the rows each are another model
    summary = doc["summary"][0]
    gain = row["bag3"]["roc_auc"] - row["refit"]["roc_auc"]
    assert summary["bag3_roc_auc_gain"] == pytest.approx(gain, abs=1e-4)
    assert summary["bag3_roc_auc_wins"] == int(gain > 0)
    section = next(s for s in report.render(tmp_path).split("## ") if s.startswith("A bag of k fold fits"))
    assert "bag of 3: ROC-AUC gain (wins)" in section and "| breast_cancer | linear | 1 |" in section
