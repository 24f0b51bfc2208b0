"""The ml-developer's last step: register the released package, after the release gate passed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ml_expert.agents.context import AgentContext
from ml_expert.config import RunConfig
from ml_expert.phases import DataResult, DeploymentResult, Release, TrainingResult, ValidationResult
from ml_expert.registry import Registry, ReleaseRefused, candidate_record, not_worse_than
from ml_expert.registry.records import ReleaseInfo, VersionRecord
from ml_expert.registry.store import release_model_name


def register(state: dict[str, Any]) -> dict[str, Any]:
    """Copy the package into the workspace registry as a new version and make it production."""
    ctx = AgentContext(state, "ml-developer", "registry")
    deployment, validation = DeploymentResult.of(state), ValidationResult.of(state)
    data, config = DataResult.of(state), RunConfig.of(state)
    fine_tuning = TrainingResult.of(state).fine_tuning
    info = ReleaseInfo(
        run_id=ctx.run_id,
        model=deployment.model,
        task=data.task,
        primary_metric=validation.primary_metric,
        test_score=validation.test_score,
        metrics=validation.numeric_metrics,
        data_fingerprint=data.fingerprint,
        seed=config.seed,
        split_sizes=data.split_sizes.model_dump(),
        forced=config.force,
        parent=fine_tuning.parent if fine_tuning else None,
    )
    name = release_model_name(state)
    registry = Registry(config.workspace, model=name)

    try:
        source = deployment.source.model_dump() if deployment.source else None
        version = registry.register(deployment.package, info, guard=release_guard(state), source=source)
    except ReleaseRefused as exc:
        reason = f"release gate refused at registration (production changed meanwhile): {exc}"
        ctx.decide("do not register", reason)
        return {"status": "refused", "reason": reason}
    ctx.decide(f"register as {version} and make it production of model {name}", "the release gate passed")
    release = Release(
        model_name=name, version=version, aliases=registry.aliases(), registry=str(registry.root)
    )
    ctx.record("registry", release.model_dump())
    return {"deployment": deployment.model_copy(update={"registry": release}).state()}


def release_guard(state: dict[str, Any]) -> Callable[[VersionRecord | None], str | None]:
    """The release gate's comparison, repeated by the registry under its lock against production as
    it is then (its record, None if none): a refusal reason, or None to register.

    A `--from` run was compared with the production version its tester scored on the run's own
    test rows; if another release became production since, that verdict no longer applies (the
    data differ, so the records cannot be compared here): refused, unless --force."""
    candidate = candidate_record(state)
    scored = ValidationResult.of(state).production_on_test

    def guard(current: VersionRecord | None) -> str | None:
        from ml_expert.tools.scoring import better

        if scored is not None:
            now = current.version if current else None
            if now == scored.version or candidate.force:
                return None
            return (
                f"not_worse_than_production: compared with production {scored.version} on this run's "
                f"test rows, but production is now {now}; run again to compare with it (or --force)"
            )
        passed, detail = not_worse_than(candidate, current, better)
        return None if passed else f"not_worse_than_production: {detail}"

    return guard
