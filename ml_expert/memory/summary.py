"""The `summary` finding: one paragraph an agent (or claude-flow's semantic search) can read first.

Built from the run's other findings alone (files in the run directory), so it says only what
those findings hold: the dataset, the chosen model, the user's metric against the dummy
baseline, the gates, the released version and where the package is.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml_expert.errors import PhaseResultError


class RunSummary(BaseModel):
    """The `summary` finding: prose plus the figures it quotes."""

    text: str = Field(
        description="One paragraph: dataset, model, test score against the dummy, gates, package."
    )
    status: str | None = None
    dataset: str | None = None
    task: str | None = None
    model: str | None = None
    metric: str | None = None
    test_score: float | None = None
    dummy_test_score: float | None = None
    gates: dict[str, bool] = Field(default_factory=dict)
    package_dir: str | None = None
    model_name: str | None = None
    version: str | None = None


class GateFinding(BaseModel):
    """A `guardrails/<gate>` finding as the summary reads it: the gate's verdict (graph/verdict.py's
    GateVerdict), of which it quotes whether it passed."""

    model_config = ConfigDict(extra="ignore")

    passed: bool


class StatusFinding(BaseModel):
    """The `status` finding the run's last node writes: how it ended and why."""

    model_config = ConfigDict(extra="ignore")

    status: str
    reason: str | None
    phase: str | None = None


_M = TypeVar("_M", bound=BaseModel)


def _finding(model: type[_M], key: str, value: Any) -> _M:
    """A finding read through its model; one that does not match is refused, naming the field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise PhaseResultError(f"the {key} finding does not match its model: {exc}") from exc


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def build_summary(run_id: str, findings: dict[str, Any]) -> RunSummary:
    """Summarise a run from its findings (keys as in the run's findings/ folder)."""
    # here: memory stays light
    from ml_expert.phases import DeploymentResult, PreparationFinding, Release, ValidationResult

    analysis = findings.get("data-analysis")
    data = PreparationFinding.from_finding(analysis) if analysis else None
    metrics = ValidationResult.from_finding(findings["metrics"]) if findings.get("metrics") else None
    deployment = DeploymentResult.from_finding(findings["deployment"]) if findings.get("deployment") else None
    registry = Release.from_finding(findings["registry"]) if findings.get("registry") else None
    status = _finding(StatusFinding, "status", findings["status"]) if findings.get("status") else None
    gates = {
        key.split("/", 1)[1]: _finding(GateFinding, key, value).passed
        for key, value in sorted(findings.items())
        if key.startswith("guardrails/")
    }
    summary = RunSummary(
        text="",
        status=status.status if status else None,
        dataset=data.source if data else None,
        task=data.task if data else None,
        model=metrics.model if metrics else deployment.model if deployment else None,
        metric=metrics.primary_metric if metrics else None,
        test_score=metrics.test_score if metrics else None,
        dummy_test_score=metrics.dummy_test_score if metrics else None,
        gates=gates,
        package_dir=deployment.package_dir if deployment else None,
        model_name=registry.model_name if registry else None,
        version=registry.version if registry else None,
    )
    parts = [f"ml-expert run {run_id}"]
    if data and summary.dataset:
        rows = data.split_sizes.total
        shape = f" ({rows} rows, {len(data.features)} features)" if rows else ""
        parts.append(f"trained a {summary.task or ''} model on {summary.dataset}{shape}".replace("  ", " "))
    sentence = " ".join(parts) + "."
    out = [sentence]
    if summary.model:
        out.append(
            f"Chosen model: {summary.model}; test {summary.metric} {_fmt(summary.test_score)} against "
            f"{_fmt(summary.dummy_test_score)} for the dummy baseline."
        )
    if gates:
        passed = [g for g, ok in gates.items() if ok]
        failed = [g for g, ok in gates.items() if not ok]
        out.append(
            "Gates passed: "
            + (", ".join(passed) or "none")
            + (f"; refused by: {', '.join(failed)}" if failed else "")
            + "."
        )
    out.append(
        f"Outcome: {summary.status or 'unknown'}"
        + (f" ({status.reason})" if status and status.reason else "")
        + "."
    )
    if summary.package_dir:
        release = ""
        if summary.version:
            name = f"{summary.model_name} " if summary.model_name else ""
            release = f", released as {name}{summary.version}"
        out.append(f"Deployment package: {summary.package_dir}{release}.")
    summary.text = " ".join(out)
    return summary
