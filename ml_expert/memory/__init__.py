"""The ``ml-expert/*`` memory namespace shared by the agents (Redis or an embedded SQLite file).

Agents write through :class:`FindingsRecorder`, which keeps a file copy of every finding in
the run directory so a failing backend never loses one. Only redis-py and the standard
library are used here, and redis-py (0.1 s to import) only once a Redis store is asked for.
"""

from __future__ import annotations

from typing import Any

from .base import LATEST_KEY, NAMESPACE, MemoryStore, MemoryUnavailable, full_key, redact_url
from .embedded_store import EmbeddedMemory
from .factory import open_memory
from .recorder import FindingsRecorder


def __getattr__(name: str) -> Any:
    if name in ("RUNS_KEY", "RedisMemory"):
        from . import redis_store

        return getattr(redis_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LATEST_KEY",
    "NAMESPACE",
    "RUNS_KEY",
    "EmbeddedMemory",
    "FindingsRecorder",
    "MemoryStore",
    "MemoryUnavailable",
    "RedisMemory",
    "full_key",
    "open_memory",
    "redact_url",
]
