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
from ml_expert.runs import ACTIVE, RunFile, RunStatus
from ml_expert.workspace import list_runs, new_run_id, read_run, run_dir, workspace_path

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


def effective(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """run.json as it really stands, when the process that owned the run is gone.

    A run that was `running` becomes `interrupted` (killed mid-run: `ml-expert resume` continues
    it); one that died while `starting` or `approving` never got going and becomes `failed` with
    the log's last lines as its reason. Written back once, so every later reader sees it.
    """
    if data.get("status") not in ACTIVE or pid_alive(data.get("pid"), data.get("pid_started")):
        return data
    if (
        data.get("status") in (RunStatus.STARTING, RunStatus.APPROVING)
        and time.time() - float(data.get("launched_at") or 0) < 2.0
    ):
        return data  # the child has not written its pid yet
    tail = log_tail(path)
    reason = f"the run's process (pid {data.get('pid')}) ended while the run was {data.get('status')}"
    if tail:
        reason += f"; last lines of {path / LOG_FILE}:\n{tail}"
    if data.get("status") == RunStatus.RUNNING:
        error = data.get("error") or {"kind": "killed", "message": reason, "node": data.get("phase")}
        return _gone(path, data, RunStatus.INTERRUPTED, reason, error)
    error = data.get("error") or {"kind": "crashed", "message": reason, "node": data.get("phase")}
    return _gone(path, data, RunStatus.FAILED, reason, error)


def _gone(
    path: Path, data: dict[str, Any], status: RunStatus, reason: str, error: dict[str, Any]
) -> dict[str, Any]:
    """Record what a reader found; on storage that cannot be written, report it all the same."""
    from ml_expert.errors import StorageError

    try:
        return RunFile(path).process_gone(status, reason, error).model_dump(mode="json")
    except (StorageError, OSError):
        return {**data, "status": status.value, "interrupted": True, "reason": reason, "error": error}


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
    data = effective(read_run(path), path)
    gates = data.get("gates", {})
    return {
        "run_id": run_id,
        "status": data.get("status"),
        "phase": data.get("phase"),
        "done": data.get("status") in [s.value for s in RunStatus if s.done],
        "created": data.get("created"),
        "updated": data.get("updated"),
        "gates": {k: v.get("passed") for k, v in gates.items()},
        "failed_checks": {k: v.get("failed") for k, v in gates.items() if not v.get("passed")},
        "reason": data.get("reason"),
        "error": data.get("error"),
        "warnings": data.get("warnings", []),
        "approval": data.get("approval"),
        "execution": execution_summary(data.get("execution")),
        "unsynced_findings": unsynced_findings(path),
        "run_dir": str(path),
        "log": str(path / LOG_FILE) if (path / LOG_FILE).exists() else None,
        "claude_flow": _sync_counts(data.get("claude_flow")),
    }


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
        data = effective(read_run(path), path)
        out.append(
            {
                "run_id": row["run_id"],
                "status": data.get("status"),
                "phase": data.get("phase"),
                "data": (data.get("config") or {}).get("data"),
                "created": data.get("created"),
                "reason": data.get("reason"),
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
