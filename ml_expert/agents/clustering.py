"""The clustering branch of the three agents' phases (data without a label).

The researcher measures the clustering candidates (tools/selection/clustering.py), the
ml-developer takes the chosen one as trained, and the tester reads the test split once
(tools/validation/clustering.py). Preparation and deployment are the shared phases: the same
leak-free preprocessing, the same exports, package and registry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import joblib

from ml_expert.agents.context import AgentContext
from ml_expert.agents.retry import Retries
from ml_expert.config import RunConfig
from ml_expert.errors import PhaseResultError
from ml_expert.phases import DataResult, SelectionResult, TaskAnalysis, TrainingResult, ValidationResult
from ml_expert.runs import RunFile
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.scoring import primary_metric
from ml_expert.tools.selection.records import Candidate, TimeSpent


def is_clustering(state: dict[str, Any]) -> bool:
    """Whether the run clusters, as its data result says (validated: a data result without its task
    is refused, naming the field, instead of running the supervised phases on a default)."""
    return DataResult.of(state).task == "clustering"


def model_selection(state: dict[str, Any]) -> dict[str, Any]:
    """The researcher: k-means over a range of k, a Gaussian mixture by BIC, DBSCAN; choose on validation."""
    from ml_expert.tools.selection.clustering import select_clustering
    from ml_expert.tools.selection.clustering_choice import CRITERION

    ctx = AgentContext(state, "researcher", "model_selection")
    ctx.start()
    started = time.perf_counter()
    data, config = DataResult.of(state), RunConfig.of(state)
    schema = data.input_schema
    primary_metric("clustering", config.metric)  # a classification metric is a usage error
    ctx.decide("task is clustering", data.task_reason)
    train, _ = load_split(data.files, "train", schema, data.file_hashes)
    val, _ = load_split(data.files, "val", schema, data.file_hashes)
    ctx.step("fitting clustering candidates: k-means and Gaussian mixtures over k, DBSCAN")
    result = select_clustering(schema, train, val, config.seed, Path(ctx.run_dir) / "models")
    ctx.decide(f"rank clusterings by {CRITERION} on the validation split", result.criterion_reason)
    ctx.decide(f"try k in {result.k_range[0]}..{result.k_range[-1]}", result.k_rule)
    if result.fit_rows < data.split_sizes.train:
        ctx.decide(
            f"fit the candidates on a seeded sample of {result.fit_rows} training rows",
            f"{data.split_sizes.train} training rows; {result.fit_rows} place the centres as well "
            "and keep every k, resample and refit within seconds",
        )
    by_name = {c.name: c for c in result.leaderboard}
    if "kmeans" in by_name:
        ctx.decide(
            f"k-means: k = {by_name['kmeans'].k}",
            "the highest validation silhouette over the k tried (clusters of >= 5 training rows)",
        )
    if "gaussian_mixture" in by_name:
        gmm = by_name["gaussian_mixture"]
        ctx.decide(
            f"Gaussian mixture: k = {gmm.k} ({gmm.params.get('covariance_type')} covariance)",
            "the lowest BIC on the training rows over the k tried (clusters of >= 5 training rows)",
        )
    density = by_name["dbscan"]
    ctx.decide(
        f"DBSCAN: eps {result.density['eps']}, min_samples {result.density['min_samples']}, "
        f"{result.density['clusters']} cluster(s)",
        f"{result.density['eps_rule']}; measured only, never shipped: {density.why_not_shipped}",
    )
    ctx.decide(f"choose {result.chosen}", result.choice_reason)
    board = [c.model_dump() for c in result.leaderboard]
    seconds = time.perf_counter() - started
    selection = SelectionResult.model_validate(
        {
            "task": "clustering",
            "analysis": TaskAnalysis(
                task="clustering",
                task_reason=data.task_reason,
                rows=data.split_sizes,
                features_in=len(data.features),
                features_out=data.n_features_out,
                modality=data.modality,
            ),
            "metric": CRITERION,
            "metric_reason": result.criterion_reason,
            "leaderboard": board,
            "best_baseline": result.chosen,
            "plan": {
                "train_dnn": False,
                "network": None,
                "reason": "clustering: no label for a network to learn; the candidates are the models",
            },
            "seconds": round(seconds, 3),
            "cap_hit": False,
            "baseline_seconds": {c.name: c.fit_seconds for c in result.leaderboard},
            "budget": config.budget,
            "tuning": None,
            "clustering": result.choice(),
        }
    ).state()
    ctx.record("model-selection", selection)
    chosen = by_name.get(result.chosen)
    ctx.done(f"chosen {result.chosen}: silhouette {chosen.val_score if chosen else 0.0:.4f} on validation")
    return {"selection": selection, "phase": "model_selection"}


def training(state: dict[str, Any]) -> dict[str, Any]:
    """The ml-developer: the chosen clustering was fit on the training rows; it ships as measured."""
    ctx = AgentContext(state, "ml-developer", "training")
    ctx.start()
    selection = SelectionResult.of(state)
    leaderboard = list(selection.leaderboard)
    name = selection.best_baseline
    chosen = selection.best
    if selection.clustering is None:
        raise PhaseResultError("the clustering selection result has no clustering record")
    reason = selection.clustering.choice_reason
    if chosen.path:
        ctx.decide(
            f"ship {name} as fit on the training split (no refit on train + validation)",
            "a refit would renumber and move the clusters the validation figures and the profiles "
            "describe; the tester then measures exactly the shipped model",
        )
    result = TrainingResult(
        chosen=chosen,
        choice_reason=reason,
        leaderboard=leaderboard,
        attempt=0,
        time=TimeSpent(
            budget_seconds=selection.budget,
            model_selection_seconds=selection.seconds,
            baseline_fit_seconds=selection.baseline_seconds,
            total_seconds=selection.seconds,
            share_of_budget=round(selection.seconds / selection.budget, 3) if selection.budget else None,
            cap_hit=False,
        ),
    )
    ctx.record("training", result.state())
    ctx.done(f"chosen {name} (silhouette {chosen.val_score:.4f} on validation)")
    return {
        "training": result.state(),
        "phase": "training",
        "retries": Retries(training=0).state(),
        "status": "running",
        "reason": None,
    }


def validation(state: dict[str, Any]) -> dict[str, Any]:
    """The tester: the criterion, sizes, stability and the test against chance on the test split."""
    from ml_expert.agents.tester import _complete_test_read, _log_test_read
    from ml_expert.tools.validation.clustering import evaluate_clustering
    from ml_expert.tools.validation.report_file import write_report
    from ml_expert.tools.validation.report_inputs import ClusteringReportInputs

    ctx = AgentContext(state, "tester", "validation")
    ctx.start()
    data, selection, training_result = (
        DataResult.of(state),
        SelectionResult.of(state),
        TrainingResult.of(state),
    )
    schema = data.input_schema
    chosen = training_result.chosen
    if not chosen.path:
        raise_no_model(chosen)
    pipeline = joblib.load(chosen.verified())
    train, _ = load_split(data.files, "train", schema, data.file_hashes)
    ctx.step("reading the test split (once)")
    test, _ = load_split(data.files, "test", schema, data.file_hashes)
    reads, interrupted, models = _log_test_read(ctx.run_dir, chosen)
    ctx.step("silhouette, sizes, stability and the test against chance on the test split")
    evaluation = evaluate_clustering(pipeline, schema, train, test, RunConfig.of(state).seed)
    metrics = evaluation.test_metrics
    silhouette = metrics.silhouette
    if silhouette is None:  # evaluate_clustering always measures it
        raise PhaseResultError("the clustering evaluation has no test silhouette")
    gap = round(chosen.train_score - chosen.val_score, 6)
    (ctx.run_dir / "metrics.json").write_text(
        json.dumps(
            {
                "model": chosen.name,
                "primary_metric": selection.metric,
                "test_score": silhouette,
                "dummy_test_score": 0.0,
                "overfit_gap": gap,
                "test": metrics.model_dump(),
                "clustering": evaluation.model_dump(exclude={"test_metrics"}),
                "leaderboard": training_result.board(),
            },
            indent=2,
        )
    )
    write_report(
        ctx.run_dir,
        ClusteringReportInputs(
            run_id=ctx.run_id,
            source=data.source,
            fingerprint=data.fingerprint,
            split_sizes=data.split_sizes,
            chosen=chosen.name,
            choice_reason=training_result.choice_reason,
            metric_reason=selection.metric_reason,
            test_reads=reads,
            evaluation=evaluation,
            leaderboard=training_result.board(),
            decisions=RunFile(ctx.run_dir).read().decisions,
        ),
    )
    profiles_path = ctx.run_dir / "cluster_profiles.json"
    profiles_path.write_text(json.dumps(evaluation.profiles, indent=1) + "\n")
    result = ValidationResult(
        model=chosen.name,
        primary_metric=selection.metric,
        test_score=silhouette,
        dummy_test_score=0.0,
        overfit_gap=gap,
        test_reads=reads,
        test_reads_interrupted=interrupted,
        test_read_models=models,
        test_metrics=metrics,
        clustering=evaluation.checks(),
        profiles_path=str(profiles_path),
        metrics_path=str(ctx.run_dir / "metrics.json"),
        report_path=str(ctx.run_dir / "evaluation_report.md"),
    )
    _complete_test_read(ctx.run_dir)
    ctx.record("metrics", result.state())
    ctx.done(f"test silhouette {silhouette:.4f} (single cluster 0.0)")
    return {"validation": result.state(), "phase": "validation"}


def raise_no_model(chosen: Candidate) -> NoReturn:
    from ml_expert.errors import TrainingError

    raise TrainingError(
        f"no clustering could be shipped ({chosen.name}): no candidate found >= 2 clusters of "
        ">= 5 training rows; the rows show no cluster structure to serve"
    )
