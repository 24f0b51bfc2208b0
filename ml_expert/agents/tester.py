"""The tester: reads the untouched test split once, scores the chosen model and the dummy on it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import joblib
import numpy as np

from ml_expert.agents import clustering
from ml_expert.agents.context import AgentContext
from ml_expert.config import RunConfig
from ml_expert.hashing import verify
from ml_expert.phases import DataResult, SelectionResult, TrainingResult, ValidationResult
from ml_expert.runs import RunFile
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.scoring import greater_is_better, predict_scores, score, sign
from ml_expert.tools.selection.noise import escalation
from ml_expert.tools.selection.records import Candidate
from ml_expert.tools.validation.calibration import calibration, plot_reliability
from ml_expert.tools.validation.fairness import auto_sensitive, fairness_report
from ml_expert.tools.validation.metrics import (
    classification_metrics,
    plot_confusion_matrix,
    regression_metrics,
)
from ml_expert.tools.validation.report_file import write_report
from ml_expert.tools.validation.report_inputs import SupervisedReportInputs


def _chosen_scores(chosen: Candidate, data: DataResult, frame, task: str) -> np.ndarray:
    """Load the chosen model only after its hash matches the one recorded when it was saved."""
    path = chosen.verified()
    if chosen.kind == "sklearn":
        return predict_scores(joblib.load(path), frame)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)
    from ml_expert.tools.training.finetune import network_preprocessor

    preprocessor_file, preprocessor_sha = network_preprocessor(
        data.files["preprocessor"], data.preprocessor_sha256, chosen.preprocessor, chosen.preprocessor_sha256
    )
    verify(preprocessor_file, preprocessor_sha)
    preprocessor = joblib.load(preprocessor_file)
    model = keras.saving.load_model(path)
    x = preprocessor.transform(frame).astype("float32")
    out = np.asarray(model.predict_on_batch(x))
    return out if task == "classification" else out.ravel()


def _sensitive_columns(
    ctx: AgentContext, schema: InputSchema, requested: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Sensitive columns as {name: model-frame key}, and those that cannot be used, with why.

    Named with --sensitive, or found by name when none is named. Only model inputs are in the
    test split's frame: a named column that was dropped (ID-like, leakage) cannot be grouped on.
    """
    by_name = {c.name: c.key for c in schema.columns} | {c.key: c.key for c in schema.columns}
    names = list(requested) or auto_sensitive(schema.names)
    if not requested and names:
        ctx.decide(f"check fairness across {names}", "their names say they describe people (auto-detected)")
    found = {n: by_name[n] for n in names if n in by_name}
    missing = {
        n: "not a model input (dropped or absent), so the test frame does not hold it"
        for n in names
        if n not in by_name
    }
    return found, missing


def _log_test_read(run_dir, chosen: Candidate) -> tuple[int, int, int]:
    """Log this read of the test split in run.json, before any figure is computed from it.

    Returns (reads that produced results, counting this one; earlier reads interrupted before any
    result — a run killed during validation and resumed; distinct model artifacts ever evaluated).
    The gate asks for exactly one read with results, and one model: the test rows never chose
    anything. `_complete_test_read` marks this read as having produced its results.
    """
    entry = {
        "model": chosen.name,
        "sha256": chosen.sha256,
        "status": "started",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    log = (RunFile(run_dir).append("test_read_log", entry).model_extra or {})["test_read_log"]
    completed = sum(1 for e in log if e["status"] == "completed") + 1
    interrupted = sum(1 for e in log[:-1] if e["status"] == "started")
    models = len({(e["model"], e["sha256"]) for e in log})
    RunFile(run_dir).update(test_reads=completed)
    return completed, interrupted, models


def _complete_test_read(run_dir) -> None:
    def complete(data: dict[str, Any]) -> None:
        log = data.get("test_read_log") or []
        if log:
            log[-1] = {**log[-1], "status": "completed"}

    RunFile(run_dir).edit(complete)


def validation(state: dict[str, Any]) -> dict[str, Any]:
    if clustering.is_clustering(state):
        return clustering.validation(state)
    ctx = AgentContext(state, "tester", "validation")
    ctx.start()
    data, selection, training = DataResult.of(state), SelectionResult.of(state), TrainingResult.of(state)
    config = RunConfig.of(state)
    schema = data.input_schema
    task, metric = data.task, selection.metric
    chosen = training.chosen

    ctx.step("reading the test split (once)")
    test_x, test_y = load_split(data.files, "test", schema, data.file_hashes)
    reads, interrupted, models = _log_test_read(ctx.run_dir, chosen)

    scores = _chosen_scores(chosen, data, test_x, task)
    dummy_scores = predict_scores(joblib.load(selection.row("dummy").verified()), test_x)
    threshold = chosen.threshold
    if task == "classification":
        test_metrics = classification_metrics(test_y, scores, schema.classes or [], threshold)
        plot_confusion_matrix(
            test_metrics.confusion_matrix or [], schema.classes or [], ctx.run_dir / "confusion_matrix.png"
        )
    else:
        test_metrics = regression_metrics(test_y, scores)
    extra: dict[str, Any] = {}
    calibrated = None
    if task == "classification" and len(schema.classes or []) == 2:
        calibrated = calibration(test_y, scores[:, 1])
        extra["calibration"] = calibrated.model_dump()
        plot_reliability(calibrated, ctx.run_dir / "reliability_curve.png")
    sensitive, unusable = _sensitive_columns(ctx, schema, list(config.sensitive))
    if sensitive or unusable:
        ctx.step(f"fairness across {sorted(sensitive)}")
        fairness = fairness_report(test_x, sensitive, task, test_y, scores, len(schema.classes or []))
        extra["fairness"] = {name: figures.model_dump() for name, figures in fairness.items()}
        extra["fairness_unavailable"] = unusable
        gaps = [figures.gap for figures in fairness.values()]
        extra["fairness_gap"] = max(gaps) if gaps else None
    test_score = score(metric, test_y, scores, threshold)
    if config.from_:
        from ml_expert.agents.finetuning import production_on_test

        production = production_on_test(state, test_x, test_y, metric)
        extra["production_on_test"] = production.model_dump() if production else None
    dummy_score = score(metric, test_y, dummy_scores)
    # How far apart the two are on these rows, against the noise of the difference (the gate's
    # "beats the dummy" check): a tie within the noise is not a loss.
    versus_dummy = escalation(
        metric,
        np.asarray(test_y),
        dummy_scores,
        scores,
        seed=int(config.seed),
        candidate_threshold=threshold,
        simple="dummy",
        candidate=chosen.name,
        rows_name="test",
    )
    # train minus validation in the metric's better direction: > 0 means better on train
    gap = round(sign(metric) * (chosen.train_score - chosen.val_score), 6)
    (ctx.run_dir / "metrics.json").write_text(
        json.dumps(
            {
                "model": chosen.name,
                "primary_metric": metric,
                "greater_is_better": greater_is_better(metric),
                "decision_threshold": threshold,
                "test_score": test_score,
                "dummy_test_score": dummy_score,
                "overfit_gap": gap,
                "test": test_metrics.without_report().model_dump(),
                "leaderboard": training.board(),
                **extra,
            },
            indent=2,
        )
    )
    escalations = [*selection.escalations, *filter(None, [training.network_escalation])]
    write_report(
        ctx.run_dir,
        SupervisedReportInputs(
            run_id=ctx.run_id,
            task=task,
            source=data.source,
            fingerprint=data.fingerprint,
            split_sizes=data.split_sizes,
            chosen=chosen.name,
            choice_reason=training.choice_reason,
            metric=metric,
            metric_reason=selection.metric_reason,
            comparison=selection.comparison,
            escalations=escalations,
            threshold=threshold,
            test_reads=reads,
            test_reads_interrupted=interrupted,
            test_metrics=test_metrics,
            dummy_test_score=dummy_score,
            overfit_gap=gap,
            leaderboard=training.leaderboard,
            dnn=training.dnn,
            time=training.time,
            execution=selection.execution,
            calibration=calibrated,
            fairness=extra.get("fairness"),
            fairness_unavailable=extra.get("fairness_unavailable"),
            fairness_gap=extra.get("fairness_gap"),
            production_on_test=extra.get("production_on_test"),
            decisions=RunFile(ctx.run_dir).read().decisions,
            sample=selection.sample,
        ),
    )
    result = ValidationResult(
        model=chosen.name,
        primary_metric=metric,
        greater_is_better=greater_is_better(metric),
        decision_threshold=threshold,
        test_score=test_score,
        dummy_test_score=dummy_score,
        versus_dummy=versus_dummy,
        overfit_gap=gap,
        test_reads=reads,
        test_reads_interrupted=interrupted,
        test_read_models=models,
        test_metrics=test_metrics.without_report(),
        calibration=calibrated.figures() if calibrated else None,
        fairness=extra.get("fairness"),
        fairness_unavailable=extra.get("fairness_unavailable"),
        fairness_gap=extra.get("fairness_gap"),
        production_on_test=extra.get("production_on_test"),
        metrics_path=str(ctx.run_dir / "metrics.json"),
        report_path=str(ctx.run_dir / "evaluation_report.md"),
    )
    _complete_test_read(ctx.run_dir)
    ctx.record("metrics", result.state())
    ctx.done(f"test {metric} {test_score:.4f} (dummy {dummy_score:.4f})")
    return {"validation": result.state(), "phase": "validation"}
