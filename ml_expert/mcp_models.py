"""Typed outputs of the MCP tools: the output schemas an agent runtime reads, every field described.

Only pydantic and the standard library, so the server stays light at start-up.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ml_expert.runs.record import RunStatus  # the one status enum (run.json's)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", use_enum_values=True)


class StartedRun(_Out):
    """A run started in the background."""

    ok: bool = Field(description="True: the run's process was started.")
    run_id: str = Field(description="The run's id: pass it to get_status, get_findings, predict.")
    status: RunStatus = Field(description="Always `starting` here; poll get_status for what follows.")
    run_dir: str = Field(description="The run's folder (run.json, findings/, metrics.json, deployment/).")
    pid: int = Field(description="Process id of the background run.")
    log: str = Field(description="File the background run logs to.")


class ClaudeFlowSync(_Out):
    """What the run's claude-flow sync did (runs started with claude_flow_sync)."""

    ok: bool = Field(False, description="Every key was stored in claude-flow memory and read back unchanged.")
    stored: int = Field(0, description="Keys stored and read back unchanged (RUN_ID/<finding> and latest).")
    failed: int = Field(0, description="Keys claude-flow did not keep.")
    namespace: str = Field("ml-expert", description="The claude-flow memory namespace.")
    cli: str | None = Field(None, description="The claude-flow CLI used.")
    version: str | None = Field(None, description="Its version.")
    error: str | None = Field(None, description="Why the sync was not tried (CLI missing or too old).")
    seconds: float = Field(0.0, description="Wall time the sync added at the end of the run.")
    cpu_seconds: float = Field(0.0, description="CPU time of the claude-flow CLI calls at the end.")


class RunStatusReport(_Out):
    """Status, phase, gate verdicts and outcome of one run."""

    run_id: str = Field(description="The run's id.")
    status: RunStatus | None = Field(description="Where the run stands.")
    phase: str | None = Field(None, description="The phase or gate running now, or the last one reached.")
    done: bool = Field(description="True once the run ended (finished, refused, failed, interrupted).")
    created: str | None = Field(None, description="UTC time the run was created (ISO 8601).")
    updated: str | None = Field(None, description="UTC time run.json last changed.")
    gates: dict[str, bool | None] = Field(
        default_factory=dict, description="Gate name (data, plan, training, validation, release) -> passed."
    )
    failed_checks: dict[str, Any] = Field(
        default_factory=dict,
        description="For each refusing gate, the checks that failed, with their figures.",
    )
    reason: str | None = Field(None, description="Why the run was refused or stopped, in words.")
    error: dict[str, Any] | None = Field(None, description="For a failed run: kind, message and the node.")
    warnings: list[str] = Field(default_factory=list, description="Warnings the run recorded (never fatal).")
    approval: dict[str, Any] | None = Field(None, description="The approval decision, for runs that waited.")
    run_dir: str = Field(description="The run's folder.")
    log: str | None = Field(None, description="Log file of a background run.")
    claude_flow: ClaudeFlowSync | None = Field(
        None, description="The claude-flow sync's counts, when asked for."
    )


class Findings(_Out):
    """Findings the agents shared for a run."""

    run_id: str = Field(description="The run's id.")
    findings: dict[str, Any] = Field(
        description="Finding key (summary, data-analysis, model-selection, training, metrics, deployment, "
        "registry, status, guardrails/<gate>) -> its JSON value."
    )


class RunRow(_Out):
    """One run of the workspace."""

    run_id: str = Field(description="The run's id.")
    status: RunStatus | None = Field(None, description="Where the run stands.")
    phase: str | None = Field(None, description="The phase reached.")
    data: str | None = Field(None, description="The data the run was given (null: the bundled demo).")
    created: str | None = Field(None, description="UTC creation time (ISO 8601).")
    reason: str | None = Field(None, description="Why it was refused or stopped, if it was.")


class RunList(_Out):
    """Every run of the workspace, newest first."""

    workspace: str = Field(description="The workspace folder the server is pinned to.")
    runs: list[RunRow] = Field(description="Runs, newest first.")


class Prediction(_Out):
    """Predictions of a finished run's deployment package."""

    run_id: str | None = Field(None, description="The run whose package predicted (when run_id was given).")
    model: str | None = Field(None, description="The version label that predicted (v3, or path:RUN_ID).")
    predictions: list[Any] = Field(
        description="One prediction per input row, in order (class label or number)."
    )
    classes: list[Any] | None = Field(
        None, description="Class labels, in the order of `probabilities`' columns."
    )
    probabilities: list[list[float]] | None = Field(
        None, description="Per row, the probability of each class (only when proba was true)."
    )


class ApprovalStarted(_Out):
    """An approval decision handed to the waiting run."""

    ok: bool = Field(description="True: the run was resumed in the background.")
    run_id: str = Field(description="The run's id.")
    status: RunStatus = Field(description="`approving`; poll get_status until done.")
    approved: bool = Field(description="The decision passed on: true deploys, false ends the run refused.")
    pid: int = Field(description="Process id of the resumed run.")


class ModelList(_Out):
    """Models ready to serve or predict with."""

    source: str = Field(description="Where the list comes from: the model registry.")
    aliases: dict[str, Any] = Field(
        default_factory=dict, description="Alias (production, previous) -> version."
    )
    models: list[dict[str, Any]] = Field(
        description="One entry per released version: model_name, version, aliases (production, "
        "previous), run_id, model, task, primary_metric, test_score, metrics."
    )
