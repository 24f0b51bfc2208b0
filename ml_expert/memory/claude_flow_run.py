"""A run's claude-flow sync: the CLI checked once when the run starts, one batch when it ends.

Both steps keep their outcome in run.json under `claude_flow` (a :class:`SyncReport`), and a
failure adds exactly one line to the run's `warnings`: never a failed run.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .claude_flow import ClaudeFlowBridge, ClaudeFlowCLI, ClaudeFlowError, SyncReport, check_cli, sync_enabled

if TYPE_CHECKING:
    from ml_expert.config import RunConfig

logger = logging.getLogger("ml_expert.memory")
_PRE_TASK: dict[str, subprocess.Popen[bytes]] = {}


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (the CLI calls): a figure the machine's load
    does not inflate, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# run.json is read and written only through the three functions below (one seam to the run record).


def _record(run_dir: Path, report: SyncReport, cli: ClaudeFlowCLI | None) -> None:
    """Keep the sync's outcome in run.json under `claude_flow` (with the CLI, for a resumed run)."""
    from ml_expert.runs import RunFile

    RunFile(run_dir).update(
        claude_flow={**report.model_dump(), "cli_info": cli.model_dump() if cli else None}
    )


def _warn(run_dir: Path, message: str) -> None:
    """One line in the run's warnings (never twice the same)."""
    from ml_expert.runs import RunFile

    logger.warning(message)

    def add(data: dict[str, Any]) -> None:
        data["warnings"] = [*(w for w in data.get("warnings", []) if w != message), message]

    RunFile(run_dir).edit(add)


def _stored_report(run_dir: Path) -> dict[str, Any] | None:
    from ml_expert.runs import RunFile

    with contextlib.suppress(Exception):
        return getattr(RunFile(run_dir).read(), "claude_flow", None)
    return None


def begin(run_dir: Path, run_id: str, config: RunConfig, description: str) -> SyncReport | None:
    """Check the CLI once (one warning when unusable); fire the `pre-task` hook when asked."""
    if not sync_enabled(config):
        return None
    try:
        cli = check_cli(Path(config.workspace))
    except ClaudeFlowError as exc:
        report = SyncReport(error=str(exc))
        _record(run_dir, report, None)
        _warn(run_dir, f"claude-flow sync is off for this run: {exc}")
        return report
    report = SyncReport(cli=" ".join(cli.command), version=cli.version)
    _record(run_dir, report, cli)
    if cli.hooks:
        hook = ClaudeFlowBridge(cli).hook("pre-task", "-i", run_id, "-d", description)
        if hook is not None:
            _PRE_TASK[run_id] = hook  # reaped at the end of the run
    return report


def finish(
    run_dir: Path,
    run_id: str,
    config: RunConfig,
    findings: dict[str, Any],
    *,
    success: bool,
    score: float | None,
    description: str,
    started: float | None = None,
) -> SyncReport | None:
    """Store every finding in one batch, `latest` beside it, read all back; record the counts."""
    if not sync_enabled(config):
        return None
    stored = _stored_report(run_dir) or {}
    if stored.get("error"):  # the check at the start failed and already warned: try nothing
        return SyncReport.model_validate({k: v for k, v in stored.items() if k != "cli_info"})
    t0, cpu0 = time.perf_counter(), _children_cpu()
    try:
        info = stored.get("cli_info")
        cli = ClaudeFlowCLI.model_validate(info) if info else check_cli(Path(config.workspace))
    except (ClaudeFlowError, ValueError) as exc:
        report = SyncReport(error=str(exc))
        _record(run_dir, report, None)
        _warn(run_dir, f"claude-flow sync is off for this run: {exc}")
        return report
    bridge = ClaudeFlowBridge(cli)
    hook = None
    if cli.hooks:
        args = [
            "post-task",
            "-i",
            run_id,
            "--success",
            "true" if success else "false",
            "-a",
            "ml-expert",
            "--agent-role",
            "ml-developer",
            "-t",
            description,
            "--store-results",
        ]
        if score is not None and 0.0 <= score <= 1.0:  # a quality in [0, 1]; an RMSE is not one
            args += ["-q", f"{score:.4f}"]
        if started is not None:
            args += ["--duration", str(int((time.time() - started) * 1000))]
        hook = bridge.hook(*args)
    report = bridge.sync(run_id, findings)
    for proc in (hook, _PRE_TASK.pop(run_id, None)):
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=30)
    report.seconds = round(time.perf_counter() - t0, 3)
    report.cpu_seconds = round(_children_cpu() - cpu0, 3)
    _record(run_dir, report, cli)
    if not report.ok:
        first = next(iter(report.errors.items()))
        _warn(
            run_dir,
            f"claude-flow memory did not keep {report.failed} of {report.failed + report.stored} keys "
            f"(e.g. {first[0]}: {first[1]}); they stay in the run's findings/ folder",
        )
    return report
