"""Runs: the typed run record (run.json) with its status enum and locked writes."""

from ml_expert.runs.record import (
    ACTIVE,
    ApprovalDecision,
    ApprovalRecord,
    RunError,
    RunFile,
    RunRecord,
    RunStatus,
)

__all__ = [
    "ACTIVE",
    "ApprovalDecision",
    "ApprovalRecord",
    "RunError",
    "RunFile",
    "RunRecord",
    "RunStatus",
]
