"""Runs: the typed run record (run.json) with its status enum and locked writes."""

from ml_expert.runs.record import ACTIVE, RunError, RunFile, RunRecord, RunStatus

__all__ = ["ACTIVE", "RunError", "RunFile", "RunRecord", "RunStatus"]
