"""Redis backend: plain strings any Redis client can read, no modules required.

Layout (every key stays inside the ``ml-expert/`` prefix so the namespace can be listed,
exported or flushed by pattern):

- ``ml-expert/<run_id>/<key>``: string, the finding's JSON text.
- ``ml-expert/latest``: string, the run id written to most recently (plain text).
- ``ml-expert/_runs``: sorted set of run ids scored by the Unix time of their first finding,
  so ``runs()`` is ordered and cheap without scanning the keyspace. Run ids cannot start
  with ``_``, so this key never collides with a run.

The client is lazy: constructing a :class:`RedisMemory` never connects, so an agent can be
handed a store for a server that is down and still finish its run (findings stay on disk).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .base import LATEST_KEY, NAMESPACE, MemoryStore, MemoryUnavailable, redact_url

RUNS_KEY = f"{NAMESPACE}/_runs"
#: Short, so a run whose Redis hangs loses about a second, once (the recorder then stops asking).
SOCKET_TIMEOUT_S = 1.0
_DELETE_CHUNK = 500
_GLOB_SPECIAL = "*?[]^"

T = TypeVar("T")


def _escape_glob(text: str) -> str:
    """Escape Redis MATCH pattern characters so run ids are matched literally."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


class RedisMemory(MemoryStore):
    """Memory in a Redis server at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""

    def __init__(self, url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> None:
        self.url = url
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                decode_responses=True,
                # One quick retry survives a server restart between calls (stale pooled
                # connection) without multiplying the timeout when the server is gone.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), retries=1),
                client_name="ml-expert",
            )
        except ValueError as exc:  # malformed URL: a usage error, but name the URL clearly
            raise ValueError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from exc

    @property
    def backend(self) -> str:
        return "redis"

    @property
    def location(self) -> str:
        return redact_url(self.url)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one Redis operation, turning every client error into MemoryUnavailable."""
        try:
            return fn()
        except redis.RedisError as exc:
            raise MemoryUnavailable(f"Redis memory at {self.location} failed to {what}: {exc}") from exc
        except OSError as exc:  # e.g. TLS or socket errors raised before redis-py wraps them
            raise MemoryUnavailable(f"Redis memory at {self.location} failed to {what}: {exc}") from exc

    def _write(self, run_id: str, key: str, text: str) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.set(key, text)
            pipe.zadd(RUNS_KEY, {run_id: time.time()}, nx=True)
            pipe.set(LATEST_KEY, run_id)
            pipe.execute()

        self._call(f"store {key}", write)

    def _read(self, key: str) -> str | None:
        return self._call(f"read {key}", lambda: self._client.get(key))  # type: ignore[return-value]

    def _scan(self, prefix: str) -> list[str]:
        pattern = _escape_glob(prefix) + "*"
        return self._call(
            f"list keys {pattern}",
            lambda: list(dict.fromkeys(self._client.scan_iter(match=pattern, count=1000))),
        )

    def runs(self) -> list[str]:
        return self._call("list runs", lambda: list(self._client.zrange(RUNS_KEY, 0, -1)))  # type: ignore[arg-type]

    def _delete_run(self, run_id: str) -> None:
        keys = self.keys(run_id)

        def delete() -> None:
            pipe = self._client.pipeline(transaction=True)
            for i in range(0, len(keys), _DELETE_CHUNK):
                pipe.delete(*keys[i : i + _DELETE_CHUNK])
            pipe.zrem(RUNS_KEY, run_id)
            pipe.execute()
            if self._client.get(LATEST_KEY) == run_id:
                newest = self._client.zrange(RUNS_KEY, -1, -1)
                if newest:
                    self._client.set(LATEST_KEY, newest[0])  # type: ignore[index]
                else:
                    self._client.delete(LATEST_KEY)

        self._call(f"delete run {run_id}", delete)

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError, OSError):
            self._client.close()

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (redis.RedisError, OSError):
            return False

    def check(self) -> None:
        """Raise MemoryUnavailable (naming the URL) unless the server answers now."""
        self._call("answer PING", self._client.ping)
