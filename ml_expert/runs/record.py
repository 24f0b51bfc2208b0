"""run.json, typed: the `RunStatus` enum and the one writer of every transition.

Several processes write one run.json: the run itself, a detached parent recording its child's
pid, a poller that finds the process gone, an approval. Every write here is a read-modify-write
under an exclusive `fcntl` lock on `run.json.lock`, then an atomic replace, so no writer loses
another's fields and a reader never sees half a file. Light (pydantic and the standard library).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

RUN_FILE = "run.json"


class RunStatus(StrEnum):
    STARTING = "starting"  # a detached child was spawned and has not written its pid yet
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVING = "approving"  # an approval was accepted; the run resumes
    INTERRUPTED = "interrupted"  # its process died mid-run: `ml-expert resume` continues it
    FAILED = "failed"
    REFUSED = "refused"  # a gate (or a person) refused: ended with a reason
    FINISHED = "finished"

    @property
    def active(self) -> bool:
        """A process owns the run (a dead owner turns it into interrupted or failed)."""
        return self in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.APPROVING)

    @property
    def done(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.REFUSED, RunStatus.FAILED, RunStatus.INTERRUPTED)

    @property
    def resumable(self) -> bool:
        return self not in (RunStatus.FINISHED, RunStatus.REFUSED)


ACTIVE = tuple(s.value for s in RunStatus if s.active)


class RunError(BaseModel):
    kind: str
    message: str
    node: str | None = None


class ApprovalDecision(BaseModel):
    """What a person (or agent) answers to "deploy this model?": the value a run resumes with
    (`Command(resume=...)`, JSON in the checkpoint), read by the approval node."""

    approved: bool
    note: str | None = None
    by: str | None = None


class ApprovalRecord(BaseModel):
    """The decision as run.json and the graph state keep it (`approval`): who, why, when.
    Unknown keys are kept: run.json keeps what another version recorded (like RunRecord)."""

    model_config = ConfigDict(extra="allow")

    approved: bool
    by: str = "unknown"
    note: str | None = None
    at: str | None = None

    @classmethod
    def maybe(cls, state: Mapping[str, Any]) -> ApprovalRecord | None:
        """The state's approval channel, typed; None before (or without) an approval."""
        raw = state.get("approval")
        return cls.model_validate(raw) if raw else None


class RunRecord(BaseModel):
    """What run.json holds. Extra fields are kept (a finding another module records there)."""

    model_config = ConfigDict(extra="allow")

    run_id: str | None = None
    created: str | None = None
    updated: str | None = None
    status: RunStatus | None = None
    phase: str | None = None
    reason: str | None = None
    error: RunError | None = None
    pid: int | None = None
    pid_started: dict[str, Any] | None = None
    launched_at: float | None = None
    detached: bool = False
    interrupted: bool = False
    config: dict[str, Any] = {}
    manifest: dict[str, Any] = {}
    gates: dict[str, Any] = {}
    decisions: list[dict[str, Any]] = []
    warnings: list[str] = []
    approval: ApprovalRecord | None = None
    approval_token: str | None = None
    resumed: list[dict[str, Any]] = []
    # where the fits ran (tools.execution_report.ExecutionReport, validated where it is read) and
    # the claude-flow sync's outcome: present only when the run used a cluster or synced
    execution: dict[str, Any] | None = None
    claude_flow: dict[str, Any] | None = None

    @property
    def data_source(self) -> str | None:
        """The data file the run was started on (its RunConfig's `data`), for listings."""
        data = self.config.get("data")
        return None if data is None else str(data)


class GateOutcome(BaseModel):
    """A gate's verdict as `status` reads it from run.json: passed, and what failed. Its checks
    and figures (graph.verdict.GateVerdict) stay in the file; this light module needs only these."""

    passed: bool
    failed: list[str] = []


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RunFile:
    """The run.json of one run directory: typed reads, and locked, atomic transitions."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / RUN_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> RunRecord:
        from ml_expert.workspace import read_run

        return RunRecord.model_validate(read_run(self.dir))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / (RUN_FILE + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _raw(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}  # a new run
        except (OSError, ValueError) as exc:
            # damaged (truncated, overwritten): kept aside for a person, the record starts again
            aside = self.path.with_suffix(".json.damaged")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return {"recovered": f"run.json was damaged ({exc}); kept as {aside.name}"}
        return data if isinstance(data, dict) else {}

    def update(self, **fields: Any) -> RunRecord:
        """Merge fields into run.json under the lock; returns the record as written."""
        return self.edit(lambda data: data.update(fields))

    def edit(self, change: Callable[[dict[str, Any]], None]) -> RunRecord:
        """Change run.json in place under the lock (for read-modify-writes like appending)."""
        with self._locked():
            data = self._raw()
            change(data)
            data["updated"] = _now()
            record = RunRecord.model_validate(data)
            text = json.dumps(record.model_dump(mode="json", exclude_unset=True), indent=2, default=str)
            self._write(text)
        return record

    def _write(self, text: str) -> None:
        """Write then rename, fsynced; a failed write leaves no temp file. On a full disk the
        run's ballast (workspace.RESERVE_FILE) is given back once so that why the run stopped
        can still be recorded; other storage faults raise StorageError."""
        from ml_expert.workspace import RESERVE_FILE, storage_error

        tmp = self.path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
        for attempt in (1, 2):
            try:
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
                return
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
                failure = storage_error(exc)
                if failure is None:
                    raise
                ballast = self.dir / RESERVE_FILE
                if attempt == 2 or exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not ballast.exists():
                    raise failure from None
                ballast.unlink(missing_ok=True)

    # ------------------------------------------------------------------ transitions

    def start(self, run_id: str, status: RunStatus, phase: str, **fields: Any) -> RunRecord:
        """A run begins (or a detached child is queued); `created` is kept when it exists."""

        def edit(data: dict[str, Any]) -> None:
            data.update(run_id=run_id, status=status.value, phase=phase, **fields)
            data.setdefault("created", _now())

        return self.edit(edit)

    def enter_phase(self, phase: str) -> RunRecord:
        return self.update(phase=phase, status=RunStatus.RUNNING.value)

    def resume(self, pid: int, **fields: Any) -> RunRecord:
        return self.update(status=RunStatus.RUNNING.value, pid=pid, error=None, **fields)

    def await_approval(self) -> RunRecord:
        return self.update(status=RunStatus.AWAITING_APPROVAL.value, phase="approval")

    def approving(self, **fields: Any) -> RunRecord:
        return self.update(status=RunStatus.APPROVING.value, **fields)

    def fail(self, kind: str, message: str, node: str | None) -> RunRecord:
        return self.update(
            status=RunStatus.FAILED.value, error=RunError(kind=kind, message=message, node=node).model_dump()
        )

    def process_gone(self, status: RunStatus, reason: str, error: dict[str, Any]) -> RunRecord:
        """The owning process died: interrupted (resumable) or failed, with the reason."""
        return self.update(status=status.value, interrupted=True, reason=reason, error=error)

    def end(self, status: RunStatus, reason: str | None, phase: str | None) -> RunRecord:
        return self.update(status=status.value, reason=reason, phase=phase)

    def record_gate(self, name: str, verdict: dict[str, Any]) -> RunRecord:
        return self.edit(lambda data: data.setdefault("gates", {}).__setitem__(name, verdict))

    def record_decision(self, entry: dict[str, Any]) -> RunRecord:
        def edit(data: dict[str, Any]) -> None:
            decisions = [d for d in data.get("decisions", []) if d != entry]
            data["decisions"] = [*decisions, entry]

        return self.edit(edit)

    def append(self, field: str, entry: Any) -> RunRecord:
        """Add one entry to a list field (a warning, a test-read log line)."""
        return self.edit(lambda data: data.__setitem__(field, [*data.get(field, []), entry]))
