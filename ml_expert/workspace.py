"""Where runs live: `<workspace>/runs/<run_id>/`, and the run's own `run.json`."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from ml_expert.errors import DataError, StorageError, UsageError

DEFAULT_WORKSPACE = "ml-expert-workspace"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


def workspace_path(workspace: str | Path | None = None) -> Path:
    chosen = workspace or os.environ.get("ML_EXPERT_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise UsageError(f"invalid run id {run_id!r}: letters, digits, '-', '_' and '.' only")
    return run_id


def run_dir(workspace: Path, run_id: str) -> Path:
    return workspace / "runs" / check_run_id(run_id)


RESERVE_FILE = ".reserve"
RESERVE_BYTES = 256 * 1024
"""Ballast a run keeps so that, on a full disk, it can still write why it stopped."""
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class DamagedRunError(DataError):
    """run.json exists but cannot be read (truncated, not JSON): the run is reported, not fatal."""


def read_run(path: Path) -> dict[str, Any]:
    file = path / "run.json"
    if not file.exists():
        raise UsageError(f"{path} is not a run directory (no run.json)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedRunError(f"{file} is damaged and cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise DamagedRunError(f"{file} is damaged: not a JSON object")
    return data


def storage_error(exc: BaseException) -> StorageError | None:
    """The StorageError a failed write means (full disk, read-only, no permission), else None."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        what = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the workspace is on a read-only file system",
        }.get(exc.errno, "the workspace is not writable")
        where = f" ({exc.filename})" if exc.filename else ""
        return StorageError(f"{what}{where}: {exc.strerror}; free space or fix permissions, then resume")
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if any(k in text for k in ("readonly", "read-only", "disk is full", "unable to open", "disk i/o")):
            return StorageError(
                f"the checkpoint database cannot be written ({exc}); "
                "free space or fix permissions, then resume"
            )
    return None


def check_writable(workspace: Path) -> None:
    """Fail early, with the real reason, when the workspace cannot take a file (read-only, full)."""
    probe = workspace / f".write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise (storage_error(exc) or exc) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def reserve_space(path: Path) -> None:
    """Write the run's ballast file (best effort: a full disk is reported when it matters)."""
    with contextlib.suppress(OSError):
        ballast = path / RESERVE_FILE
        if not ballast.exists() or ballast.stat().st_size < RESERVE_BYTES:
            ballast.write_bytes(b"\0" * RESERVE_BYTES)


def list_runs(workspace: Path) -> list[dict[str, Any]]:
    """Every run with a run.json; a damaged one is listed with status `damaged` and why."""
    runs = []
    root = workspace / "runs"
    if not root.exists():
        return runs
    for path in sorted(root.iterdir()):
        if (path / "run.json").exists():
            try:
                data = read_run(path)
            except DamagedRunError as exc:
                runs.append({"run_id": path.name, "status": "damaged", "reason": exc.message})
                continue
            runs.append(
                {"run_id": path.name, **{k: data.get(k) for k in ("status", "phase", "task", "created")}}
            )
    return runs
