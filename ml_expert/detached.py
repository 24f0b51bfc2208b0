"""Detached runs: a training run in its own process, polled through run.json.

Agent runtimes time out long shell and MCP calls, so `ml-expert run --detach` (and the MCP tool
`start_run`) write the validated RunConfig to `<run_dir>/config.json` and start
`python -m ml_expert run --config <run_dir>/config.json --run-id ID --json` in a new session with
its output in `<run_dir>/run.log`, record the child's pid in run.json and return the run id at once.

A run is alive only while the pid recorded in its run.json is alive (and is the same process:
its start time matches). A run.json that still says `running` whose process is gone is reported
as `failed` with the reason and the end of its log: that is how a crash, a kill or an
out-of-memory shows. Light module: no TensorFlow, scikit-learn or LangGraph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ml_expert.config import CONFIG_FILE, RunConfig
from ml_expert.runs import RunFile, RunStatus
from ml_expert.runs.record import GateOutcome, RunError, RunRecord
from ml_expert.workspace import DamagedRunError, list_runs, new_run_id, read_run, run_dir, workspace_path

LOG_FILE = "run.log"
APPROVAL_TOKEN_ENV = "ML_EXPERT_APPROVAL_TOKEN"  # lets the detached `approve` claim an `approving` run
_CHILDREN: list[subprocess.Popen] = []  # reaped by reap_children() so none stays a zombie


def _pid_start_time(pid: int) -> float | None:
    """The process's start time, or None when no such live process exists (zombies count as dead)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def pid_alive(pid: int | None, started: dict[str, Any] | None = None) -> bool:
    """True when `pid` runs and, if its start time was recorded, is the very process recorded.

    `started` is `{"pid": ..., "time": ...}`; it is ignored when it names another pid (a later
    writer of run.json, such as a resumed run, recorded only its pid).
    """
    if not pid:
        return False
    actual = _pid_start_time(int(pid))
    if actual is None:
        return False
    if not isinstance(started, dict) or started.get("pid") != pid or started.get("time") is None:
        return True
    return abs(actual - float(started["time"])) < 1.0


def log_tail(path: Path, lines: int = 12) -> str:
    file = path / LOG_FILE
    if not file.exists():
        return ""
    return "\n".join(file.read_text(errors="replace").splitlines()[-lines:])


def read_record(path: Path) -> RunRecord:
    """run.json typed. One that no longer matches its model (a status no version writes, a pid
    that is not a number) is a damaged run, named by its field: reported, never a traceback."""
    from pydantic import ValidationError

    from ml_expert.errors import first_problem

    try:
        return RunRecord.model_validate(read_run(path))
    except ValidationError as exc:
        raise DamagedRunError(f"{path / 'run.json'} is damaged: {first_problem(exc)}") from None


def effective(record: RunRecord, path: Path) -> RunRecord:
    """run.json as it really stands, when the process that owned the run is gone.

    A run that was `running` becomes `interrupted` (killed mid-run: `ml-expert resume` continues
    it); one that died while `starting` or `approving` never got going and becomes `failed` with
    the log's last lines as its reason. Written back once, so every later reader sees it.
    """
    status = record.status
    if status is None or not status.active or pid_alive(record.pid, record.pid_started):
        return record
    if status in (RunStatus.STARTING, RunStatus.APPROVING) and time.time() - (record.launched_at or 0) < 2.0:
        return record  # the child has not written its pid yet
    tail = log_tail(path)
    reason = f"the run's process (pid {record.pid}) ended while the run was {status.value}"
    if tail:
        reason += f"; last lines of {path / LOG_FILE}:\n{tail}"
    kind, after = (
        ("killed", RunStatus.INTERRUPTED) if status == RunStatus.RUNNING else ("crashed", RunStatus.FAILED)
    )
    error = record.error or RunError(kind=kind, message=reason, node=record.phase)
    return _gone(path, record, after, reason, error)


def _gone(path: Path, record: RunRecord, status: RunStatus, reason: str, error: RunError) -> RunRecord:
    """Record what a reader found; on storage that cannot be written, report it all the same."""
    from ml_expert.errors import StorageError

    try:
        return RunFile(path).process_gone(status, reason, error.model_dump(mode="json", exclude_unset=True))
    except (StorageError, OSError):
        return record.model_copy(
            update={"status": status, "interrupted": True, "reason": reason, "error": error}
        )


def run_summary(workspace: str | Path | None, run_id: str = "latest") -> dict[str, Any]:
    """What `status` and the MCP tool `get_status` report (run id `latest` = newest run)."""
    from ml_expert.errors import UsageError

    ws = workspace_path(workspace)
    if run_id == "latest":
        runs = [r for r in list_runs(ws) if r.get("status") != "damaged"]
        if not runs:
            raise UsageError(f"no readable runs in {ws}")
        run_id = max(runs, key=lambda r: r.get("created") or "")["run_id"]
    path = run_dir(ws, run_id)
    record = effective(read_record(path), path)
    gates = _gates(record, path)
    return {
        "run_id": run_id,
        "status": record.status.value if record.status else None,
        "phase": record.phase,
        "done": record.status is not None and record.status.done,
        "created": record.created,
        "updated": record.updated,
        "gates": {name: gate.passed for name, gate in gates.items()},
        "failed_checks": {name: gate.failed for name, gate in gates.items() if not gate.passed},
        "reason": record.reason,
        "error": record.error.model_dump(mode="json", exclude_unset=True) if record.error else None,
        "warnings": record.warnings,
        "approval": record.approval.model_dump(mode="json", exclude_unset=True) if record.approval else None,
        "execution": execution_summary(record.execution),
        "unsynced_findings": unsynced_findings(path),
        "run_dir": str(path),
        "log": str(path / LOG_FILE) if (path / LOG_FILE).exists() else None,
        "claude_flow": _sync_counts(record.claude_flow),
    }


def _gates(record: RunRecord, path: Path) -> dict[str, GateOutcome]:
    """The gates' verdicts typed; one without its fields makes the run damaged, named."""
    from pydantic import ValidationError

    from ml_expert.errors import first_problem

    try:
        return {name: GateOutcome.model_validate(verdict) for name, verdict in record.gates.items()}
    except ValidationError as exc:
        raise DamagedRunError(f"{path / 'run.json'} is damaged: gates: {first_problem(exc)}") from None


def execution_summary(execution: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the fits ran: the cluster at the start, tasks per node, in flight/done, retries."""
    from pydantic import ValidationError

    from ml_expert.tools.execution_report import ExecutionReport

    if not execution:
        return None
    try:
        report = ExecutionReport.model_validate(execution)
    except ValidationError as exc:  # a run.json another version wrote: said, not a traceback in `status`
        return {"unreadable": f"run.json's execution record does not match its model: {exc}"}
    if report.mode != "ray":
        return None
    cluster = report.cluster
    where = (
        f"{cluster.address}: {cluster.nodes} node(s), {cluster.cpus} CPUs, {cluster.gpus} GPUs, "
        f"{cluster.memory_gb} GB at the start"
        if cluster
        else "no cluster recorded at the start"
    )
    return {
        "cluster": where,
        "tasks_done": report.tasks_done,
        "tasks_in_flight": report.tasks_in_flight,
        "tasks_per_node": report.tasks_per_node,
        "retries": [f"{r.label} #{r.index} (attempt {r.attempt}): {r.cause}" for r in report.retries],
    }


def _sync_counts(block: Any) -> dict[str, Any] | None:
    """The claude-flow sync's outcome without the CLI details kept for the run's own use."""
    return (
        {k: v for k, v in block.items() if k not in ("cli_info", "errors", "keys")}
        if isinstance(block, dict)
        else None
    )


def unsynced_findings(path: Path) -> list[str]:
    """Findings kept as files that never reached the memory store (`ml-expert memory sync` replays them)."""
    unsynced = path / "findings" / "_unsynced.json"
    if not unsynced.exists():
        return []
    try:
        keys = json.loads(unsynced.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["(unreadable list: run `ml-expert memory sync` to replay every finding)"]
    return sorted(str(k) for k in keys) if isinstance(keys, list) else []


def runs_table(workspace: str | Path | None) -> list[dict[str, Any]]:
    """Every run of the workspace, newest first, with dead processes reported as failed."""
    ws = workspace_path(workspace)
    out = []
    for row in list_runs(ws):
        path = run_dir(ws, row["run_id"])
        if row.get("status") == "damaged":  # reported and skipped: one bad file never hides the rest
            out.append({**row, "phase": None, "data": None, "created": None})
            continue
        try:
            record = effective(read_record(path), path)
        except DamagedRunError as exc:  # a record that no longer matches its model: said, skipped
            out.append(
                {
                    "run_id": row["run_id"],
                    "status": "damaged",
                    "reason": exc.message,
                    "phase": None,
                    "data": None,
                    "created": None,
                }
            )
            continue
        out.append(
            {
                "run_id": row["run_id"],
                "status": record.status.value if record.status else None,
                "phase": record.phase,
                "data": record.data_source,
                "created": record.created,
                "reason": record.reason,
            }
        )
    return sorted(out, key=lambda r: r.get("created") or "", reverse=True)


def _spawn(args: list[str], path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    reap_children()
    log = open(path / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml_expert", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the caller's exit and its Ctrl-C
            env={**os.environ, **(env or {})},
            close_fds=True,
        )
    finally:
        log.close()
    _CHILDREN.append(proc)
    return proc


def _record_child(path: Path, proc: subprocess.Popen, **fields: Any) -> None:
    started = {"pid": proc.pid, "time": _pid_start_time(proc.pid)}
    RunFile(path).update(pid=proc.pid, pid_started=started, **fields)


def start_detached(config: RunConfig, run_id: str | None = None) -> dict[str, Any]:
    """Start a run of `config` in its own process; return its run id and where to look.

    The child reads `<run_dir>/config.json`, written here from the validated config, so it runs
    exactly what the caller asked for (no command line rebuilt and parsed a second time).
    """
    ws = workspace_path(config.workspace)
    run_id = run_id or new_run_id()
    path = run_dir(ws, run_id)
    path.mkdir(parents=True, exist_ok=True)
    config_file = config.save(path / CONFIG_FILE)
    RunFile(path).start(run_id, RunStatus.STARTING, "queued", detached=True, launched_at=time.time())
    proc = _spawn(["run", "--config", str(config_file), "--run-id", run_id, "--json"], path)
    _record_child(path, proc)
    return {
        "ok": True,
        "run_id": run_id,
        "status": RunStatus.STARTING.value,
        "run_dir": str(path),
        "pid": proc.pid,
        "log": str(path / LOG_FILE),
    }


def approve_detached(
    run_id: str,
    workspace: str | Path | None,
    *,
    approved: bool = True,
    note: str | None = None,
    by: str = "cli",
) -> dict[str, Any]:
    """Resume an `awaiting_approval` run in its own process (deployment can take a while)."""
    from ml_expert.errors import UsageError

    ws = workspace_path(workspace)
    path = run_dir(ws, run_id)
    status = RunFile(path).read().status
    if status != RunStatus.AWAITING_APPROVAL:
        raise UsageError(f"run {run_id} is {status}, not awaiting_approval: nothing to approve")
    args = ["approve", run_id, "--workspace", str(ws), "--json", "--by", by]
    if not approved:
        args.append("--reject")
    if note:
        args += ["--note", note]
    import secrets

    token = secrets.token_hex(8)
    # `approving` (not awaiting_approval) so a second approve is refused while this one runs.
    RunFile(path).approving(launched_at=time.time(), approval_token=token)
    proc = _spawn(args, path, env={APPROVAL_TOKEN_ENV: token})
    _record_child(path, proc)
    return {
        "ok": True,
        "run_id": run_id,
        "status": RunStatus.APPROVING.value,
        "approved": approved,
        "pid": proc.pid,
    }


def reap_children() -> None:
    """Collect finished children of this process (a long-lived MCP server starts many)."""
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def wait(
    workspace: str | Path | None, run_id: str, timeout: float = 300.0, poll: float = 0.5
) -> dict[str, Any]:
    """Poll until the run is done or awaits approval (used by tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = run_summary(workspace, run_id)
        if summary["done"] or summary["status"] == RunStatus.AWAITING_APPROVAL:
            return summary
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {summary['status']} after {timeout:.0f}s")
        time.sleep(poll)
