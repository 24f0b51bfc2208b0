"""Record findings so that a failing memory backend never loses one.

The run directory is the source of truth: :meth:`FindingsRecorder.record` writes
``<run_dir>/findings/<key>.json`` (``/`` in the key becomes ``__``) before it touches the
store. When the store fails (Redis down at start or mid-run) the key is listed in
``findings/_unsynced.json``, a warning is logged on ``ml_expert.memory``, and the run goes on;
a store that hangs (a write fails after more than SLOW_FAILURE_S) is not asked again for the rest
of the run. :meth:`FindingsRecorder.sync` (``ml-expert memory sync RUN_ID``) later replays every
finding file into a working store.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .base import MemoryStore, dumps, validate_key, validate_run_id

logger = logging.getLogger("ml_expert.memory")

FINDINGS_DIR = "findings"
UNSYNCED_FILE = "_unsynced.json"
_SEP = "__"


def finding_filename(key: str) -> str:
    """File name for a finding key: ``guardrails/data`` -> ``guardrails__data.json``."""
    validate_key(key)
    if _SEP in key or key.startswith("_"):
        # '__' would make two keys share a file; a leading '_' could shadow _unsynced.json.
        raise ValueError(f"finding key {key!r} must not contain '{_SEP}' or start with '_'")
    return key.replace("/", _SEP) + ".json"


def key_from_filename(name: str) -> str:
    """Inverse of :func:`finding_filename`."""
    if not name.endswith(".json"):
        raise ValueError(f"{name!r} is not a finding file")
    return validate_key(name[: -len(".json")].replace(_SEP, "/"))


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a finding."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


SLOW_FAILURE_S = 0.5
"""A store write that failed after more than this (a hung server: socket timeouts) makes the run
stop asking the store: the rest of the run's findings go to files only, listed in _unsynced.json,
with one warning, so a hung Redis costs one timeout per run, not one per finding. A quick failure
(connection refused) costs nothing and is retried at the next finding."""
_GAVE_UP: set[tuple[str, str, str]] = set()  # (backend, location, run id): runs of this process
_GAVE_UP_LOCK = threading.Lock()


class FindingsRecorder:
    """What agents call to share a finding: file first, then the store, never raising for the store.

    ``store`` may be None (memory disabled): findings are then only written to files and
    nothing is listed as unsynced.
    """

    def __init__(self, store: MemoryStore | None, run_dir: Path, run_id: str) -> None:
        self.store = store
        self.run_id = validate_run_id(run_id)
        self.run_dir = Path(run_dir)
        self.findings_dir = self.run_dir / FINDINGS_DIR
        self._lock = threading.Lock()  # graph nodes may record from several threads

    @property
    def unsynced_path(self) -> Path:
        return self.findings_dir / UNSYNCED_FILE

    def path_for(self, key: str) -> Path:
        """Where the file copy of ``key`` lives."""
        return self.findings_dir / finding_filename(key)

    def record(self, key: str, value: Any) -> bool:
        """Save a finding; return True when the store has it too, False when only the file does.

        Raises only for caller errors (illegal key: ``ValueError``; unserialisable value:
        ``TypeError``) and for failures to write the run directory itself.
        """
        path = self.path_for(key)
        text = dumps(value, indent=2)  # fails before anything is written
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, text + "\n")
        if self.store is None:
            return False
        run = (self.store.backend, self.store.location, self.run_id)
        if run in _GAVE_UP:  # the store hung earlier in this run: not asked again (warned once)
            logger.debug(
                "%s for run %s kept in %s only (memory hung earlier in this run)", key, self.run_id, path
            )
            self._mark(key, unsynced=True)
            return False
        started = time.monotonic()
        try:
            self.store.put(self.run_id, key, json.loads(text))
        except Exception as exc:  # any store failure: keep the run going, remember the gap
            waited = time.monotonic() - started
            if waited > SLOW_FAILURE_S:  # it hung: stop asking it for the rest of this run
                with _GAVE_UP_LOCK:
                    first = run not in _GAVE_UP
                    _GAVE_UP.add(run)
                if first:
                    logger.warning(
                        "memory %s at %s did not store %s for run %s within %.1f s (%s); it is not asked "
                        "again in this run: every finding stays in %s, listed in %s, and "
                        "`ml-expert memory sync %s` replays them",
                        self.store.backend,
                        self.store.location,
                        key,
                        self.run_id,
                        waited,
                        exc,
                        self.findings_dir,
                        self.unsynced_path,
                        self.run_id,
                    )
                self._mark(key, unsynced=True)
                return False
            logger.warning(
                "memory %s at %s did not store %s for run %s (%s); the finding is kept in %s "
                "and listed in %s for a later sync",
                self.store.backend,
                self.store.location,
                key,
                self.run_id,
                exc,
                path,
                self.unsynced_path,
            )
            self._mark(key, unsynced=True)
            return False
        self._mark(key, unsynced=False)
        return True

    def unsynced(self) -> list[str]:
        """Keys written to files whose store write failed, sorted."""
        try:
            data = json.loads(self.unsynced_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            logger.warning("cannot read %s (%s); treating every finding as unsynced", self.unsynced_path, exc)
            return sorted(self.findings().keys())
        return sorted({str(k) for k in data}) if isinstance(data, list) else []

    def findings(self) -> dict[str, Path]:
        """Every finding file of this run, by key."""
        if not self.findings_dir.is_dir():
            return {}
        out: dict[str, Path] = {}
        for path in sorted(self.findings_dir.glob("*.json")):
            if path.name.startswith("_"):
                continue
            try:
                out[key_from_filename(path.name)] = path
            except ValueError:
                logger.warning("ignoring %s: not a finding file name", path)
        return out

    def sync(self, store: MemoryStore | None = None) -> int:
        """Replay every finding file into ``store`` (default: this recorder's); return how many.

        Unlike :meth:`record`, failures raise (the caller asked for the sync); the unsynced
        list is cleared only after every finding was stored.
        """
        target = store if store is not None else self.store
        if target is None:
            raise ValueError("sync needs a memory store")
        count = 0
        for key, path in self.findings().items():
            value = json.loads(path.read_text(encoding="utf-8"))
            target.put(self.run_id, key, value)
            count += 1
        with self._lock:
            self.unsynced_path.unlink(missing_ok=True)
        return count

    def _mark(self, key: str, *, unsynced: bool) -> None:
        """Add ``key`` to, or drop it from, the unsynced list (the file exists only when non-empty)."""
        with self._lock:
            keys = set(self.unsynced())
            if (key in keys) == unsynced:
                return
            if unsynced:
                keys.add(key)
            else:
                keys.discard(key)
            if keys:
                _atomic_write(self.unsynced_path, json.dumps(sorted(keys), indent=2) + "\n")
            else:
                self.unsynced_path.unlink(missing_ok=True)
