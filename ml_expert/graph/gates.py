"""The five guardrail gates. Each reads the state and returns a GateVerdict with figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ml_expert.agents.retry import TRAINING_RETRY
from ml_expert.config import RunConfig
from ml_expert.errors import IntegrityError, PhaseResultError
from ml_expert.graph.verdict import Check, GateVerdict
from ml_expert.hashing import verify
from ml_expert.phases import DataResult, DeploymentResult, SelectionResult, TrainingResult, ValidationResult
from ml_expert.tools.data.checks import prepared_problems
from ml_expert.tools.data.splitting import MIN_PER_CLASS
from ml_expert.tools.scoring import METRICS, better, greater_is_better
from ml_expert.tools.validation.fairness import ClassificationFairness

DEFAULT_MAX_FAIRNESS_GAP = 0.2
"""Largest equalized-odds difference (classification) or relative per-group MAE difference
(regression) between groups. Enforced for columns named with --sensitive or when the user
sets --max-fairness-gap; auto-detected columns are measured and reported, not enforced."""


def data_gate(state: dict[str, Any]) -> GateVerdict:
    """Model selection starts only on validated data; every check carries its figures."""
    try:
        data = DataResult.of(state)
    except PhaseResultError as exc:  # a data phase that wrote no (or a malformed) result is refused
        return GateVerdict.from_checks("data", [Check(name="result_typed", passed=False, detail=str(exc))])
    sizes = data.split_sizes
    rows_in = data.rows_in
    removed = {
        "without_target": data.rows_without_target,
        "duplicates": data.duplicates_removed,
        "rare_classes": data.rare_class_rows,
        "outliers_in_train": data.outliers_removed,
    }
    kept = sizes.total
    problems = prepared_problems(data.files, sizes, data.n_features_out, data.preprocessor_sha256)
    checks = [
        Check(
            name="validated",
            passed=not problems,
            value=problems,
            detail="; ".join(problems)
            if problems
            else "train and validation arrays re-read: finite, shapes as recorded; preprocessor hash matches",
        ),
        Check(
            name="rows_accounted",
            passed=kept + sum(removed.values()) == rows_in,
            value={"rows_in": rows_in, "kept": kept, "dropped": removed},
            detail=f"{rows_in} rows read = {kept} kept + {sum(removed.values())} dropped",
        ),
        Check(
            name="splits_disjoint",
            passed=data.splits_disjoint and min(sizes.train, sizes.val, sizes.test) > 0,
            value=sizes.model_dump(),
            detail="train, validation and test are non-empty and share no row",
        ),
    ]
    if data.task == "classification":
        per_class = data.train_class_counts
        smallest = min(per_class.values()) if per_class else 0
        classes = data.classes or []
        named = {str(classes[int(k)]) if int(k) < len(classes) else k: v for k, v in per_class.items()}
        checks.append(
            Check(
                name="rows_per_class",
                passed=len(per_class) >= 2 and smallest >= MIN_PER_CLASS,
                value=named,
                threshold=MIN_PER_CLASS,
                detail=f"{len(per_class)} classes; smallest has {smallest} training rows",
            )
        )
    features = set(data.features)
    suspects = data.leakage_suspects
    kept = set(data.kept_columns)  # the user's --keep: reported, not refused
    left_in = sorted(features & set(suspects) - kept)
    kept_in = sorted(features & set(suspects) & kept)
    checks.append(
        Check(
            name="no_leakage_suspects",
            passed=not left_in,
            value=suspects,
            detail=f"still in the features: {left_in}"
            if left_in
            else f"{len(suspects) - len(kept_in)} suspects found and dropped"
            + (f"; kept by the user (--keep): {kept_in}" if kept_in else ""),
        )
    )
    checks.append(
        Check(
            name="features_present",
            passed=len(features) > 0,
            value=len(features),
            detail=f"{len(features)} feature columns; dropped: {sorted(data.dropped_columns)}",
        )
    )
    return GateVerdict.from_checks("data", checks)


def plan_gate(state: dict[str, Any]) -> GateVerdict:
    try:
        selection = SelectionResult.of(state)
    except PhaseResultError as exc:  # a selection phase that wrote no (or a malformed) result is refused
        return GateVerdict.from_checks("plan", [Check(name="result_typed", passed=False, detail=str(exc))])
    leaderboard = selection.leaderboard
    budget = RunConfig.of(state).budget
    spent = selection.seconds
    plan = selection.plan
    # Two baselines beside the dummy; one when the time cap stopped the others (they were started,
    # and the budget, not the plan, left one: longfit.py), since nothing better could be measured.
    baselines = sum(c.name != "dummy" for c in leaderboard)
    needed = 1 if selection.stopped else 2
    checks = [
        Check(
            name="baselines_measured",
            passed=any(c.name == "dummy" for c in leaderboard) and baselines >= needed,
            value=[c.name for c in leaderboard],
            threshold=needed,
            detail=(
                "dummy and at least two simple baselines scored on validation"
                if not selection.stopped
                else "dummy and at least one simple baseline scored on validation "
                f"({', '.join(f.name for f in selection.stopped)} stopped by the time cap)"
            ),
        ),
        Check(
            name="network_has_budget_left",
            passed=not (plan.train_dnn and spent >= budget),
            value=round(spent, 2),
            threshold=budget,
            detail=f"model selection took {spent:.1f} s of a {budget:.0f} s budget"
            + ("; the network was skipped (cap hit)" if selection.cap_hit else ""),
        ),
    ]
    if plan.train_dnn:
        need = float(plan.estimated_memory_mb or 0)
        avail = float(plan.available_memory_mb or 0)
        checks.append(
            Check(
                name="fits_memory",
                passed=need < avail,
                value=need,
                threshold=avail,
                detail=f"estimated {need:.0f} MB of {avail:.0f} MB available",
            )
        )
    return GateVerdict.from_checks("plan", checks)


def training_gate(state: dict[str, Any]) -> GateVerdict:
    try:
        training = TrainingResult.of(state)
    except PhaseResultError as exc:  # a training phase that wrote no (or a malformed) result is refused
        refused = Check(name="result_typed", passed=False, detail=str(exc))
        return GateVerdict.from_checks("training", [refused])
    retries = TRAINING_RETRY.retries(state)
    checks: list[Check] = []
    dnn = training.dnn
    diverged = training.diverged_network
    if diverged:
        discarded = diverged.discarded
        checks.append(
            Check(
                name="loss_finite",
                passed=bool(discarded),
                value={"attempt": diverged.attempt, "learning_rate": diverged.config.learning_rate},
                threshold=TRAINING_RETRY.max_retries,
                detail=(
                    f"network discarded after {retries} retries, the best baseline ships: {discarded}"
                    if discarded
                    else f"{diverged.stopped_reason}; retry {retries + 1} of {TRAINING_RETRY.max_retries} "
                    "with a lower learning rate and tighter clipping"
                ),
            )
        )
    chosen = training.chosen
    if dnn and chosen.kind != "keras":
        # The network lost to a simpler model and is neither exported nor shipped: how its training
        # went is reported, but it cannot refuse the model that does ship.
        losses = dnn.losses
        checks.append(
            Check(
                name="network_not_shipped",
                passed=True,
                value={"first": losses[0] if losses else None, "best": min(losses) if losses else None},
                detail=f"{chosen.name} ships; the network ({dnn.stopped_reason}) is not judged",
            )
        )
    elif dnn:
        losses = dnn.losses
        finite = bool(losses) and all(math.isfinite(v) for v in losses)
        checks.append(Check(name="loss_finite", passed=finite, value=losses[-1] if losses else None))
        # A resumed fit's history starts at the backup, so it may already be near its best.
        decreased = finite and (min(losses) < losses[0] or dnn.initial_epoch > 0)
        checks.append(
            Check(
                name="loss_decreased",
                passed=decreased,
                value={"first": losses[0] if losses else None, "best": min(losses) if losses else None},
            )
        )
        checks.append(
            Check(
                name="stopped_for_a_reason",
                passed=bool(dnn.stopped_reason),
                value={"reason": dnn.stopped_reason, "cap_hit": dnn.cap_hit},
            )
        )
        loaded = dnn.loaded_checkpoint
        path, digest = (loaded.path, loaded.sha256) if loaded else (None, None)
        checks.append(_hash_check("network_checkpoint_verified", path, digest))
    checks.append(Check(name="retries", passed=retries <= TRAINING_RETRY.max_retries, value=retries))
    checks.append(_hash_check("checkpoint_verified", chosen.path, chosen.sha256))
    return GateVerdict.from_checks("training", checks)


def should_retry_training(state: dict[str, Any]) -> bool:
    """A refused training gate goes back to training when the network diverged and retries are left."""
    return TRAINING_RETRY.should_retry(state)


def validation_gate(state: dict[str, Any]) -> GateVerdict:
    try:
        validation = ValidationResult.of(state)
    except PhaseResultError as exc:  # a validation phase that wrote no (or a malformed) result is refused
        refused = Check(name="result_typed", passed=False, detail=str(exc))
        return GateVerdict.from_checks("validation", [refused])
    config = RunConfig.of(state)
    metric = validation.primary_metric
    test = validation.test_metrics
    checks = []
    for name, minimum in config.min_metric.items():
        # a loss (rmse, log_loss...) given to --min-metric is a ceiling: lower is better
        ceiling = name in METRICS and not greater_is_better(name)
        value = test.figure(name)
        checks.append(
            Check(
                name=f"min_{name}",
                passed=value is not None and (value <= minimum if ceiling else value >= minimum),
                value=value,
                threshold=minimum,
                detail=f"test {name} {value} vs required {'at most' if ceiling else 'at least'} {minimum}",
            )
        )
    chosen_score = validation.test_score
    dummy_score = validation.dummy_test_score
    # The choice already had to beat the dummy on held-out rows; on the test split a shortfall
    # inside the noise of the paired difference (e.g. 3 rows of 783 on a 94 % majority class) is a
    # tie, not a loss. Beyond the noise, the model is refused.
    versus = validation.versus_dummy
    beats = better(metric, chosen_score, dummy_score)
    tie = not beats and versus is not None and versus.gain >= -versus.margin
    checks.append(
        Check(
            name="beats_dummy_baseline",
            passed=bool(beats or tie),
            value=chosen_score,
            threshold=dummy_score,
            detail=f"test {metric}: chosen {chosen_score} vs dummy {dummy_score}"
            + (f"; a tie within the noise: {versus.rule}" if tie and versus else ""),
        )
    )
    gap = validation.overfit_gap
    bound = config.max_overfit_gap
    checks.append(
        Check(
            name="overfit_gap",
            passed=gap <= bound,
            value=gap,
            threshold=bound,
            detail=f"train - validation {metric} = {gap}",
        )
    )
    fairness = validation.fairness or {}
    enforce = bool(config.sensitive) or config.max_fairness_gap is not None
    fair_bound = config.max_fairness_gap or DEFAULT_MAX_FAIRNESS_GAP
    for column, result in fairness.items():
        gap_value = result.gap
        classifier = isinstance(result, ClassificationFairness)
        what = "equalized odds difference" if classifier else "relative MAE gap"
        checks.append(
            Check(
                name=f"fairness_{column}",
                passed=(not enforce) or gap_value <= fair_bound,
                value=gap_value,
                threshold=fair_bound,
                detail=f"{what} across {result.groups_compared}"
                + ("" if enforce else "; auto-detected column: reported, not enforced"),
            )
        )
    for column, why in (validation.fairness_unavailable or {}).items():
        checks.append(
            Check(name=f"fairness_{column}", passed=not enforce, value=None, threshold=fair_bound, detail=why)
        )
    reads, interrupted = validation.test_reads, validation.test_reads_interrupted
    models = validation.test_read_models
    checks.append(
        Check(
            name="test_split_read_once",
            passed=reads == 1 and models == 1,
            value={"reads_with_results": reads, "interrupted_reads": interrupted, "models": models},
            threshold=1,
            detail=(
                f"{reads} read(s) produced results, for {models} model artifact(s)"
                + (
                    f"; {interrupted} earlier read(s) of the same model were interrupted before any result"
                    if interrupted
                    else ""
                )
            ),
        )
    )
    if validation.clustering is not None:  # only the clustering tester measures these
        from ml_expert.graph.clustering_gates import clustering_checks

        checks += clustering_checks(validation.clustering)
    return GateVerdict.from_checks("validation", checks)


def release_gate(state: dict[str, Any]) -> GateVerdict:
    try:
        deployment, validation = DeploymentResult.of(state), ValidationResult.of(state)
    except PhaseResultError as exc:  # a deployment that wrote no (or a malformed) result is refused
        return GateVerdict.from_checks("release", [Check(name="result_typed", passed=False, detail=str(exc))])
    # An export withdrawn because its format cannot hold the architecture (its file deleted) is
    # reported, not judged: the release ships and judges the rest.
    withdrawn = [e for e in deployment.exports if not e.shipped]
    exports = [e for e in deployment.exports if e.shipped]
    checks = [
        Check(
            name=f"export_{e.format}_matches",
            passed=e.parity.passed and not e.error,
            value=e.parity.model_dump(),
            detail=e.error or "reloaded from disk and compared with the in-memory model",
        )
        for e in exports
    ]
    checks.append(Check(name="exports_present", passed=bool(exports), value=len(exports)))
    if withdrawn:
        checks.append(
            Check(
                name="exports_not_shipped",
                passed=True,
                value=[e.format for e in withdrawn],
                detail="; ".join(e.not_shipped_reason or e.format for e in withdrawn),
            )
        )
    package = deployment.package_dir
    files = deployment.files
    missing = []
    bad = []
    for name, digest in files.items():
        path = Path(package) / name if package else None
        if path is None or not path.exists():
            missing.append(name)
            continue
        try:
            verify(path, digest)
        except IntegrityError:
            bad.append(name)
    required = {
        "model.onnx",
        "schema.json",
        "inference.py",
        "requirements.txt",
        "README.md",
        "Dockerfile",
        "server.py",
        "training_stats.json",
    }
    absent = sorted(required - set(files))
    checks.append(
        Check(
            name="package_complete",
            passed=bool(package) and not missing and not bad and not absent,
            value={"missing": missing, "hash_mismatch": bad, "not_in_manifest": absent},
        )
    )
    latency = deployment.package_latency
    max_ms = RunConfig.of(state).max_latency_ms  # single-row p99 through the package's inference.py
    checks.append(
        Check(
            name="latency_p99",
            passed=latency is not None and latency.p99_ms <= max_ms,
            value=latency.p99_ms if latency else None,
            threshold=max_ms,
            detail="single-row p99 in ms through the package's inference.py"
            + (f" (p50 {latency.p50_ms:.3f}, p95 {latency.p95_ms:.3f})" if latency else ": not measured"),
        )
    )
    checks.append(_production_check(state, validation))
    return GateVerdict.from_checks("release", checks)


def _production_check(state: dict[str, Any], validation: ValidationResult) -> Check:
    """Refuse to replace production with a model that scores worse on the same held-out rows."""
    from ml_expert.registry import Registry, RegistryError, candidate_record, comparable
    from ml_expert.registry.store import release_model_name

    config = RunConfig.of(state)
    force = config.force
    on_same_rows = validation.production_on_test
    if on_same_rows:
        # --from: the tester scored current production on this run's test rows too.
        score, incumbent = validation.test_score, on_same_rows.test_score
        metric = validation.primary_metric
        worse = better(metric, incumbent, score)
        return Check(
            name="not_worse_than_production",
            passed=(not worse) or force,
            value=score,
            threshold=incumbent,
            detail=f"test {metric} {score} vs production {on_same_rows.version} "
            f"{incumbent} on the same new test rows" + ("; --force given" if worse and force else ""),
        )
    try:
        # The data phase's fingerprint and split sizes only (HeldOutRows), typed: a release judged on
        # a partial state (a fine-tuned or an imported run) still compares them.
        candidate = candidate_record(state)
    except PhaseResultError as exc:
        return Check(
            name="not_worse_than_production", passed=False, detail=f"cannot tell the test rows: {exc}"
        )
    try:
        name = release_model_name(state)  # the data result's source, typed, when no --model-name
    except PhaseResultError as exc:
        return Check(
            name="not_worse_than_production", passed=False, detail=f"cannot tell the model's name: {exc}"
        )
    registry = Registry(config.workspace, model=name)
    if "production" not in registry.aliases():
        return Check(name="not_worse_than_production", passed=True, detail="no production version yet")
    try:
        current = registry.record("production")
    except RegistryError as exc:  # a damaged record is no licence to replace production unseen
        return Check(
            name="not_worse_than_production", passed=False, detail=f"cannot read production: {exc.message}"
        )
    same, why = comparable(candidate, current)
    if not same:
        return Check(
            name="not_worse_than_production",
            passed=True,
            value=None,
            detail=f"production {current.version} was tested on other held-out data ({why}); "
            "nothing compared",
        )
    score, incumbent = validation.test_score, current.test_score
    metric = validation.primary_metric
    worse = incumbent is None or better(metric, incumbent, score)
    return Check(
        name="not_worse_than_production",
        passed=(not worse) or force,
        value=score,
        threshold=incumbent,
        detail=f"test {metric} {score} vs production {current.version} "
        f"{incumbent}; {why}" + ("; --force given" if worse and force else ""),
    )


def _hash_check(name: str, path: str | None, digest: str | None) -> Check:
    if not path or not digest:
        return Check(name=name, passed=False, detail="no checkpoint recorded")
    try:
        verify(path, digest)
    except (IntegrityError, FileNotFoundError) as exc:
        return Check(name=name, passed=False, value=path, detail=str(exc))
    return Check(name=name, passed=True, value=digest[:16], detail=f"{Path(path).name} SHA-256 verified")


GATES = {
    "data": data_gate,
    "plan": plan_gate,
    "training": training_gate,
    "validation": validation_gate,
    "release": release_gate,
}
