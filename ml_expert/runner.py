"""The Python API: `run()` drives the compiled graph with a checkpointer and reports progress."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ml_expert.config import RunConfig, api_parameters
from ml_expert.detached import ACTIVE, pid_alive
from ml_expert.errors import GateRefused, MLExpertError, TrainingError, UsageError
from ml_expert.execution import close_executors
from ml_expert.workspace import new_run_id, read_run, run_dir, update_run, workspace_path

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


def checkpoint_path(workspace: Path) -> Path:
    return workspace / "checkpoints.sqlite"


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
    ws.mkdir(parents=True, exist_ok=True)
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
    record = read_run(path)
    status = record.get("status")
    # A detached approve (ml_expert.detached.approve_detached) claims the run it was started for.
    token = os.environ.get("ML_EXPERT_APPROVAL_TOKEN")
    claimed = status == "approving" and bool(token) and token == record.get("approval_token")
    if status != "awaiting_approval" and not claimed:
        raise UsageError(f"run {run_id} is {status}, not awaiting_approval: nothing to approve")
    # `approving` until the approval node has read the decision (it then writes `running`).
    update_run(path, status="approving", pid=os.getpid(), approval_token=None)
    decision = {"approved": approved, "note": note, "by": by}
    return _drive(Command(resume=decision), ws, run_id, on_event, False)


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
    from langgraph.checkpoint.sqlite import SqliteSaver

    from ml_expert.graph.builder import build_graph

    ws = workspace_path(workspace)
    path = run_dir(ws, run_id)
    record = read_run(path)
    if record.get("status") in ("finished", "refused"):
        raise UsageError(f"run {run_id} already {record['status']}; nothing to resume")
    if record.get("status") in ACTIVE and pid_alive(record.get("pid"), record.get("pid_started")):
        raise UsageError(f"run {run_id} is still running (pid {record['pid']})")
    config = {"configurable": {"thread_id": run_id}}
    with SqliteSaver.from_conn_string(str(checkpoint_path(ws))) as saver:
        snapshot = build_graph(checkpointer=saver).get_state(config)
    graph_input = None if snapshot.next else {"options": record["config"], "run_id": run_id}
    update_run(
        path,
        status="running",
        pid=os.getpid(),
        error=None,
        resumed=[
            *record.get("resumed", []),
            {"from_phase": record.get("phase"), "pending": list(snapshot.next)},
        ],
    )
    return _drive(graph_input, ws, run_id, on_event, raise_on_refusal, start=record.get("phase") or "init")


def _drive(
    graph_input: Any,
    ws: Path,
    run_id: str,
    on_event: EventSink | None,
    raise_on_refusal: bool,
    start: str = "init",
) -> RunResult:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from ml_expert.graph.builder import build_graph

    config = {"configurable": {"thread_id": run_id}}
    path = run_dir(ws, run_id)
    current = start
    with SqliteSaver.from_conn_string(str(checkpoint_path(ws))) as saver:
        graph = build_graph(checkpointer=saver)
        try:
            for mode, chunk in graph.stream(graph_input, config, stream_mode=["updates", "custom"]):
                if mode == "custom" and on_event:
                    on_event(chunk)
                elif mode == "updates":
                    for node in chunk:
                        if node.startswith("__"):  # __interrupt__: the run waits for approval
                            continue
                        current = node
                        if on_event:
                            on_event({"event": "node", "node": node})
        except MLExpertError as exc:
            _mark_failed(path, exc.kind, exc.message, current)
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            _mark_failed(path, "internal", message, current)
            if current in ("model_selection", "gate_plan", "training"):
                raise TrainingError(f"training failed: {message}") from exc
            raise
        finally:
            close_executors()  # a throw-away local Ray cluster never outlives its run
        snapshot = graph.get_state(config)
        state = dict(snapshot.values)
        if snapshot.interrupts:
            state["status"] = "awaiting_approval"
            update_run(path, status="awaiting_approval", phase="approval")
    result = result_from_state(state)
    if raise_on_refusal and result.status == "refused":
        raise GateRefused(result.reason or "a gate refused")
    return result


def _mark_failed(path: Path, kind: str, message: str, node: str) -> None:
    if (path / "run.json").exists():
        update_run(path, status="failed", error={"kind": kind, "message": message, "node": node})


def result_from_state(state: dict[str, Any]) -> RunResult:
    from ml_expert.graph.outputs import run_artifacts, run_metrics

    path = Path(state["run_dir"])
    training = state.get("training") or {}
    artifacts = run_artifacts(state)
    status = state.get("status", "unknown")
    return RunResult(
        ok=status == "finished",
        run_id=state["run_id"],
        run_dir=str(path),
        status=status,
        task=(state.get("data") or {}).get("task"),
        chosen_model=(training.get("chosen") or {}).get("name"),
        metrics=run_metrics(state),
        gates={name: bool(v.get("passed")) for name, v in (state.get("gates") or {}).items()},
        artifacts=artifacts,
        reason=state.get("reason"),
    )
