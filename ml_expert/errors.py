"""Errors a user can cause, each with the exit code the CLI documents.

The CLI maps these to exit codes and one clear message; anything else is a bug and
may show a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_TRAINING = 4
EXIT_GATE = 5


def first_problem(exc: ValidationError) -> str:
    """A pydantic error's first problem on one line, its field named: `files: Field required`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the record"
    return f"{where}: {error['msg']}"


class MLExpertError(Exception):
    """Base class: carries the exit code the CLI returns for it."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(MLExpertError):
    exit_code = EXIT_USAGE
    kind = "usage"


class DataError(MLExpertError):
    exit_code = EXIT_DATA
    kind = "data"


class TrainingError(MLExpertError):
    exit_code = EXIT_TRAINING
    kind = "training"


class GateRefused(MLExpertError):
    exit_code = EXIT_GATE
    kind = "gate"


class IntegrityError(MLExpertError):
    """A file's SHA-256 does not match its manifest: refuse to load it."""

    exit_code = EXIT_DATA
    kind = "integrity"


class StorageError(MLExpertError):
    """The workspace cannot be written (read-only, disk full, no permission): the run stops,
    marked failed with this reason, and can be resumed once the storage is back."""

    exit_code = EXIT_TRAINING
    kind = "storage"


class PhaseResultError(ValueError):
    """A phase result is missing or does not match its model (a defect, not a user error)."""
