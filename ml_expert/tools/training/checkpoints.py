"""Checkpoints with hashes: the best and the last few, verified before any of them is loaded.

A manifest (`checkpoints.json`) is rewritten atomically after every save, so a run killed in the
middle of training still knows which files are whole.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict

from ml_expert.errors import IntegrityError
from ml_expert.hashing import sha256_file, verify
from ml_expert.tools.written import Written

log = logging.getLogger("ml_expert.tools.training")


class CheckpointRecord(Written):
    """One checkpoint as the keeper lists it (`records()`): the best, or one of the last epochs."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["best", "last"]
    epoch: int | None = None  # a last checkpoint's epoch
    path: str
    sha256: str


class SkippedCheckpoint(Written):
    """A checkpoint that was not loaded (its hash no longer matched, or it was gone), and why."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class CheckpointKeeper:
    """Owns `<dir>/best.keras`, `<dir>/epoch-NNNN.keras` (the last `keep_last`) and their hashes."""

    def __init__(self, directory: Path, keep_last: int = 3) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep_last = keep_last
        self.best_path = self.directory / "best.keras"
        self.manifest_path = self.directory / "checkpoints.json"
        self._manifest: dict[str, Any] = (
            json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {"last": []}
        )

    def save_last(self, model, epoch: int, copy_of: Path | None = None) -> None:
        """Save the model as this epoch's checkpoint; `copy_of`: a file just saved from the same
        weights (the best checkpoint of this epoch), copied rather than serialised again."""
        path = self.directory / f"epoch-{epoch:04d}.keras"
        if copy_of is not None and copy_of.exists():
            shutil.copyfile(copy_of, path)
        else:
            model.save(path)
        last = [r for r in self._manifest.get("last", []) if r["epoch"] != epoch]
        last.append({"epoch": epoch, "path": str(path), "sha256": sha256_file(path)})
        last.sort(key=lambda r: r["epoch"])
        for old in last[: -self.keep_last]:
            Path(old["path"]).unlink(missing_ok=True)
        self._manifest["last"] = last[-self.keep_last :]
        self.hash_best()

    def hash_best(self) -> None:
        """Record the hash of best.keras (ModelCheckpoint writes it; this records what it wrote)."""
        if self.best_path.exists():
            self._manifest["best"] = {"path": str(self.best_path), "sha256": sha256_file(self.best_path)}
        self._write()

    def _write(self) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._manifest, indent=2))
        tmp.replace(self.manifest_path)

    def records(self) -> list[dict[str, Any]]:
        """Best first, then the last ones newest first: the order in which they are tried."""
        self.hash_best()
        out = []
        if "best" in self._manifest:
            out.append({"kind": "best", **self._manifest["best"]})
        out += [{"kind": "last", **r} for r in reversed(self._manifest.get("last", []))]
        return out


def load_verified(records: list[dict[str, Any]], loader) -> tuple[Any, dict[str, Any], list[dict[str, str]]]:
    """Load the first checkpoint whose SHA-256 still matches; skip corrupt ones with a warning.

    Returns (model, the record loaded, the skipped ones with why). Raises IntegrityError when no
    checkpoint is whole.
    """
    skipped: list[dict[str, str]] = []
    for record in records:
        try:
            verify(record["path"], record["sha256"])
            return loader(record["path"]), record, skipped
        except (IntegrityError, FileNotFoundError) as exc:
            message = f"checkpoint {Path(record['path']).name} skipped: {exc}"
            warnings.warn(message, stacklevel=2)
            log.warning(message)
            skipped.append({"path": record["path"], "reason": str(exc)})
    raise IntegrityError("no checkpoint matches its recorded SHA-256; refusing to load any of them")
