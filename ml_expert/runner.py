"""The Python API: `run()` drives the compiled graph with a checkpointer and reports progress."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ml_expert.errors import GateRefused, MLExpertError, TrainingError
from ml_expert.workspace import new_run_id, read_run, run_dir, update_run, workspace_path

log = logging.getLogger("ml_expert")
EventSink = Callable[[dict[str, Any]], None]


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
    data: str | None = None,
    target: str = "target",
    *,
    seed: int = 42,
    budget: float = 120.0,
    workspace: str | Path | None = None,
    memory: str | None = None,
    min_metric: dict[str, float] | None = None,
    max_overfit_gap: float | None = None,
    train_dnn: bool = True,
    modality: str = "auto",
    dnn_learning_rate: float | None = None,
    run_id: str | None = None,
    on_event: EventSink | None = None,
    raise_on_refusal: bool = False,
) -> RunResult:
    """Run the five phases on `data` and return the outcome; data errors raise DataError."""
    ws = workspace_path(workspace)
    ws.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id()
    options: dict[str, Any] = {
        "data": data,
        "target": target,
        "seed": seed,
        "budget": budget,
        "workspace": str(ws),
        "memory": memory,
        "min_metric": min_metric or {},
        "train_dnn": train_dnn,
        "modality": modality,
    }
    if dnn_learning_rate is not None:
        options["dnn_learning_rate"] = dnn_learning_rate
    if max_overfit_gap is not None:
        options["max_overfit_gap"] = max_overfit_gap
    return _drive({"options": options, "run_id": run_id}, ws, run_id, on_event, raise_on_refusal)


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
    import os

    from langgraph.checkpoint.sqlite import SqliteSaver

    from ml_expert.errors import UsageError
    from ml_expert.graph.builder import build_graph

    ws = workspace_path(workspace)
    path = run_dir(ws, run_id)
    record = read_run(path)
    if record.get("status") in ("finished", "refused"):
        raise UsageError(f"run {run_id} already {record['status']}; nothing to resume")
    if record.get("status") == "running" and _pid_alive(record.get("pid")):
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


def _pid_alive(pid: int | None) -> bool:
    """Whether the process that wrote the run is still alive (a zombie counts as dead)."""
    import os

    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def run_state(record: dict[str, Any]) -> str:
    """running / interrupted / failed / finished / refused, from run.json and the recorded pid."""
    status = record.get("status") or "unknown"
    if status == "running" and not _pid_alive(record.get("pid")):
        return "interrupted"
    return status


def _drive(
    graph_input: dict[str, Any] | None,
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
        state = graph.get_state(config).values
    result = result_from_state(state)
    if raise_on_refusal and result.status == "refused":
        raise GateRefused(result.reason or "a gate refused")
    return result


def _mark_failed(path: Path, kind: str, message: str, node: str) -> None:
    if (path / "run.json").exists():
        update_run(path, status="failed", error={"kind": kind, "message": message, "node": node})


def result_from_state(state: dict[str, Any]) -> RunResult:
    path = Path(state["run_dir"])
    validation = state.get("validation") or {}
    deployment = state.get("deployment") or {}
    training = state.get("training") or {}
    artifacts = {
        "run_dir": str(path),
        "run_json": str(path / "run.json"),
    }
    for name, file in (
        ("metrics", "metrics.json"),
        ("evaluation_report", "evaluation_report.md"),
        ("training_history", "training_history.json"),
        ("training_curves", "training_curves.png"),
        ("confusion_matrix", "confusion_matrix.png"),
    ):
        if (path / file).exists():
            artifacts[name] = str(path / file)
    if deployment.get("package_dir"):
        artifacts["deployment"] = deployment["package_dir"]
    for record in deployment.get("exports", []):
        key = f"export_{Path(record['path']).parent.name}_{record['format']}"
        artifacts[key] = record["path"]
    status = state.get("status", "unknown")
    return RunResult(
        ok=status == "finished",
        run_id=state["run_id"],
        run_dir=str(path),
        status=status,
        task=(state.get("data") or {}).get("task"),
        chosen_model=(training.get("chosen") or {}).get("name"),
        metrics=validation.get("test_metrics", {}),
        gates={name: bool(v.get("passed")) for name, v in (state.get("gates") or {}).items()},
        artifacts=artifacts,
        reason=state.get("reason"),
    )


def load_result(workspace: str | Path | None, run_id: str) -> dict[str, Any]:
    return read_run(run_dir(workspace_path(workspace), run_id))
