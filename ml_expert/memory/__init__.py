"""The ``ml-expert/*`` memory namespace shared by the agents (Redis or an embedded SQLite file).

Agents write through :class:`FindingsRecorder`, which keeps a file copy of every finding in
the run directory so a failing backend never loses one. Only redis-py and the standard
library are imported here.
"""

from __future__ import annotations

from .base import LATEST_KEY, NAMESPACE, MemoryStore, MemoryUnavailable, full_key, redact_url
from .embedded_store import EmbeddedMemory
from .factory import open_memory
from .recorder import FindingsRecorder
from .redis_store import RUNS_KEY, RedisMemory

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
