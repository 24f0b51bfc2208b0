"""Pick the memory backend from a URL, the environment, or the workspace default."""

from __future__ import annotations

import os
from pathlib import Path

from .base import MemoryStore, redact_url
from .embedded_store import EmbeddedMemory

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
EMBEDDED_FILENAME = "memory.sqlite"
ENV_VAR = "REDIS_URL"


def open_memory(url: str | None, workspace: Path, *, verify: bool = False) -> MemoryStore:
    """Open the store a run should use.

    - ``redis://``, ``rediss://``, ``unix://`` URLs: :class:`RedisMemory`;
    - None (or empty): ``$REDIS_URL`` when set, else the embedded store
      ``<workspace>/memory.sqlite``, so memory works with no server;
    - ``embedded``: that same embedded store, even when ``$REDIS_URL`` is set;
    - ``sqlite:///abs/path.sqlite`` (absolute) or ``sqlite://rel/path.sqlite`` (relative to
      the workspace): an embedded store at that file.

    Redis is not contacted unless ``verify`` is true (then an unreachable server raises
    :class:`~ml_expert.memory.base.MemoryUnavailable`), because a run must be able to start,
    and keep its findings on disk, while Redis is down.
    """
    workspace = Path(workspace)
    if not url:
        url = os.environ.get(ENV_VAR) or "embedded"
    url = url.strip()
    store: MemoryStore
    if url.startswith(REDIS_SCHEMES):
        from .redis_store import RedisMemory

        store = RedisMemory(url)
    elif url == "embedded":
        store = EmbeddedMemory(workspace / EMBEDDED_FILENAME)
    elif url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path or path == "/":
            raise ValueError(f"memory URL {url!r} names no file; use sqlite:///path/to/memory.sqlite")
        file = Path(path)
        store = EmbeddedMemory(file if file.is_absolute() else workspace / file)
    else:
        raise ValueError(
            f"unsupported memory URL {redact_url(url)!r}: use redis://host:port/db, rediss://…, "
            "unix:///path/redis.sock, 'embedded', or sqlite:///path/to/memory.sqlite"
        )
    if verify:
        try:
            store.check()
        except BaseException:
            store.close()
            raise
    return store
