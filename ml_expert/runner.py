"""The Python API: `run()` drives the compiled graph with a checkpointer and reports progress."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ml_expert.config import RunConfig, api_parameters
from ml_expert.detached import pid_alive, unsynced_findings
from ml_expert.errors import GateRefused, MLExpertError, StorageError, TrainingError, UsageError
from ml_expert.execution import close_executors
from ml_expert.memory.claude_flow import SyncReport, sync_report
from ml_expert.runs import ApprovalDecision, RunFile, RunStatus
from ml_expert.workspace import (
    check_writable,
    new_run_id,
    reserve_space,
    run_dir,
    storage_error,
    workspace_path,
)

log = logging.getLogger("ml_expert")
EventSink = Callable[[dict[str, Any]], None]
_CALL_OPTIONS = ("config", "run_id", "on_event", "raise_on_refusal")  # how to run, not what


class RunResult(BaseModel):
    ok: bool
    run_id: str
    run_dir: str
    status: str
    task: str | None = None
    chosen_model: str | None = None
    metrics: dict[str, Any] = {}
    gates: dict[str, bool] = {}
    artifacts: dict[str, str] = {}
    reason: str | None = None
    error: str | None = None
    claude_flow: SyncReport | None = None  # the claude-flow sync's counts, when the run asked for it
    # findings kept only as files (the memory store failed or hung): `ml-expert memory sync` replays them
    unsynced_findings: list[str] = []


def checkpoint_path(workspace: Path) -> Path:
    return workspace / "checkpoints.sqlite"


def set_aside_if_damaged(path: Path) -> Path | None:
    """Move a checkpoint database that is not one (overwritten, truncated) out of the way.

    Without this, one bad file stops every run and resume in the workspace. The damaged file is
    kept (`checkpoints.sqlite.damaged-<time>`) for inspection; runs it held can no longer skip
    finished phases, but `resume` still restarts them from their run.json options."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()
        if verdict and verdict[0] == "ok":
            return None
        problem = str(verdict[0] if verdict else "no answer")
    except sqlite3.OperationalError as exc:
        if "not a database" not in str(exc) and "malformed" not in str(exc):
            return None  # locked, busy, unreadable: not damage, let the real open report it
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path.with_name(path.name + suffix), aside.with_name(aside.name + suffix))
    log.warning(
        "warning: the checkpoint database %s was damaged (%s); moved it to %s and started a new one. "
        "Runs that were in it restart their phases on resume.",
        path,
        problem,
        aside,
    )
    return aside


@contextlib.contextmanager
def open_checkpointer(ws: Path) -> Iterator[Any]:
    """The workspace's SQLite checkpointer, after setting a damaged database aside."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = checkpoint_path(ws)
    set_aside_if_damaged(path)
    with SqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


def run(
    data: str | Path | None = None,
    target: str | None = None,
    *,
    config: RunConfig | None = None,
    run_id: str | None = None,
    on_event: EventSink | None = None,
    raise_on_refusal: bool = False,
    **options: Any,
) -> RunResult:
    """Run the five phases on `data` and return the outcome; data errors raise DataError.

    The options are :class:`ml_expert.config.RunConfig`'s fields (seed, budget, workspace,
    min_metric, ...), given as keywords or as one `config`; a bad value raises UsageError.
    With `require_approval` the run stops before deployment with status `awaiting_approval`;
    :func:`approve` resumes it. With `claude_flow_sync` every finding is also stored (and read
    back) through the claude-flow CLI.
    """
    if config is None:
        given = {"data": data, **({"target": target} if target is not None else {}), **options}
        config = RunConfig.build(**given)
    elif data is not None or target is not None or options:
        raise UsageError("give the options either as keywords or as one RunConfig, not both")
    ws = Path(config.workspace or workspace_path(None))
    try:
        ws.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (storage_error(exc) or exc) from None
    run_id = run_id or new_run_id()
    return _drive({"options": config.options(), "run_id": run_id}, ws, run_id, on_event, raise_on_refusal)


run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter(
            "data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=str | None
        ),
        inspect.Parameter(
            "target", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="target", annotation=str
        ),
        *(p for p in api_parameters(described=False) if p.name not in ("data", "target")),
        *(p for name, p in inspect.signature(run).parameters.items() if name in _CALL_OPTIONS),
    ],
    return_annotation=RunResult,
)


def approve(
    run_id: str,
    *,
    approved: bool = True,
    note: str | None = None,
    by: str = "cli",
    workspace: str | Path | None = None,
    on_event: EventSink | None = None,
) -> RunResult:
    """Resume a run that waits for approval before deployment (deploys it, or ends it refused)."""
    from langgraph.types import Command

    ws = workspace_path(workspace)
    path = run_dir(ws, run_id)
    run_file = RunFile(path)
    record = run_file.read()
    status = record.status
    # A detached approve (ml_expert.detached.approve_detached) claims the run it was started for.
    token = os.environ.get("ML_EXPERT_APPROVAL_TOKEN")
    claimed = status == RunStatus.APPROVING and bool(token) and token == record.approval_token
    if status != RunStatus.AWAITING_APPROVAL and not claimed:
        raise UsageError(f"run {run_id} is {status}, not awaiting_approval: nothing to approve")
    # `approving` until the approval node has read the decision (it then writes `running`).
    run_file.approving(pid=os.getpid(), approval_token=None)
    decision = ApprovalDecision(approved=approved, note=note, by=by)
    return _drive(Command(resume=decision.model_dump(mode="json")), ws, run_id, on_event, False)


def resume(
    run_id: str,
    *,
    workspace: str | Path | None = None,
    on_event: EventSink | None = None,
    raise_on_refusal: bool = False,
) -> RunResult:
    """Continue a run that was killed: finished phases come from the checkpointer, not re-run.

    The interrupted node runs again; training picks up from its BackupAndRestore backup. A run
    killed before its first checkpoint starts again from the options recorded in run.json.
    """
    from ml_expert.graph.builder import build_graph

    ws = workspace_path(workspace)
    path = run_dir(ws, run_id)
    run_file = RunFile(path)
    record = run_file.read()
    if record.status and not record.status.resumable:
        raise UsageError(f"run {run_id} already {record.status}; nothing to resume")
    if record.status and record.status.active and pid_alive(record.pid, record.pid_started):
        raise UsageError(f"run {run_id} is still running (pid {record.pid})")
    config = {"configurable": {"thread_id": run_id}}
    try:
        with open_checkpointer(ws) as saver:
            snapshot = build_graph(checkpointer=saver).get_state(config)
    except (OSError, sqlite3.Error) as exc:
        raise (storage_error(exc) or exc) from None
    graph_input = None if snapshot.next else {"options": record.config, "run_id": run_id}
    reserve_space(path)
    run_file.resume(
        os.getpid(), resumed=[*record.resumed, {"from_phase": record.phase, "pending": list(snapshot.next)}]
    )
    return _drive(graph_input, ws, run_id, on_event, raise_on_refusal, start=record.phase or "init")


def _drive(
    graph_input: Any,
    ws: Path,
    run_id: str,
    on_event: EventSink | None,
    raise_on_refusal: bool,
    start: str = "init",
) -> RunResult:
    from ml_expert.graph.builder import build_graph

    config = {"configurable": {"thread_id": run_id}}
    path = run_dir(ws, run_id)
    current = start
    check_writable(ws)
    try:
        with open_checkpointer(ws) as saver:
            graph = build_graph(checkpointer=saver)
            try:
                # durability="sync": a node's checkpoint is on disk before the next node starts, so a
                # run killed in deployment resumes there and never re-reads the test split
                # (LangGraph's default, "async", writes it while the next node already runs).
                for mode, chunk in graph.stream(
                    graph_input,
                    config,
                    stream_mode=["updates", "custom", "tasks"],
                    durability="sync",
                ):
                    if mode == "tasks" and "triggers" in chunk:
                        current = chunk["name"]  # a node starts: a crash from here on is its crash
                    elif mode == "custom" and on_event:
                        on_event(chunk)
                    elif mode == "updates":
                        for node in chunk:
                            if node.startswith("__"):  # __interrupt__: the run waits for approval
                                continue
                            if on_event:
                                on_event({"event": "node", "node": node})
            except MLExpertError as exc:
                _mark_failed(path, exc.kind, exc.message, current)
                raise
            except Exception as exc:
                failure = storage_error(exc)
                if failure is not None:
                    _mark_failed(path, failure.kind, failure.message, current)
                    raise failure from None
                message = f"{type(exc).__name__}: {exc}"
                _mark_failed(path, "internal", message, current)
                if current in ("model_selection", "gate_plan", "training"):
                    raise TrainingError(f"training failed: {message}") from exc
                raise
            snapshot = graph.get_state(config)
            state = dict(snapshot.values)
            if snapshot.interrupts:
                state["status"] = RunStatus.AWAITING_APPROVAL.value
                RunFile(path).await_approval()
    except (OSError, sqlite3.Error) as exc:  # opening or closing the checkpointer
        failure = storage_error(exc)
        if failure is None:
            raise
        _mark_failed(path, failure.kind, failure.message, current)
        raise failure from None
    finally:
        close_executors()  # a throw-away local Ray cluster never outlives its run
    result = result_from_state(state)
    if raise_on_refusal and result.status == RunStatus.REFUSED:
        raise GateRefused(result.reason or "a gate refused")
    return result


def _mark_failed(path: Path, kind: str, message: str, node: str) -> None:
    """Record why the run stopped; if storage cannot take even that, the caller still gets the error."""
    if (path / "run.json").exists():
        with contextlib.suppress(StorageError, OSError):
            RunFile(path).fail(kind, message, node)


def result_from_state(state: dict[str, Any]) -> RunResult:
    from ml_expert.graph.outputs import run_artifacts, run_metrics

    path = Path(state["run_dir"])
    from ml_expert.graph.verdict import GateVerdict
    from ml_expert.phases import DataOrigin, TrainingResult  # here: the light commands do not import pandas

    training, data = TrainingResult.maybe(state), DataOrigin.maybe(state)
    artifacts = run_artifacts(state)
    status = state.get("status", "unknown")
    return RunResult(
        ok=status == RunStatus.FINISHED,
        run_id=state["run_id"],
        run_dir=str(path),
        status=status,
        task=data.task if data else None,
        chosen_model=training.chosen.name if training else None,
        metrics=run_metrics(state),
        gates={name: GateVerdict.model_validate(v).passed for name, v in (state.get("gates") or {}).items()},
        artifacts=artifacts,
        reason=state.get("reason"),
        claude_flow=sync_report(path),
        unsynced_findings=unsynced_findings(path),
    )
