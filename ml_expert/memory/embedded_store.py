"""Embedded backend: one SQLite file in the workspace, so memory works with no server.

Several processes (a run, ``ml-expert status``, an MCP server) may use the same file at
once: the database is in WAL mode (readers never block the writer), every operation opens
its own short-lived connection (nothing to share between threads or forked processes), and
writes take the lock up front (``BEGIN IMMEDIATE``) with a busy timeout instead of failing.

Schema:

- ``kv(key TEXT PRIMARY KEY, value TEXT, updated REAL)``: the same full keys and JSON text
  as the Redis backend, including ``ml-expert/latest`` (plain run id).
- ``runs(seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT UNIQUE, created REAL)``: runs in
  the order of their first finding; ``seq`` (not the clock) orders them, so ties and clock
  steps between processes cannot reorder runs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TypeVar

from .base import LATEST_KEY, MemoryStore, MemoryUnavailable, run_prefix

#: How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""

T = TypeVar("T")


def _upper_bound(prefix: str) -> str:
    """Smallest string greater than every string starting with ``prefix`` (which ends in '/')."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class EmbeddedMemory(MemoryStore):
    """Memory in the SQLite file at ``path`` (created with its parent folder if missing)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path).expanduser()
        self._busy_timeout = busy_timeout
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MemoryUnavailable(f"embedded memory at {self.path} cannot be created: {exc}") from exc
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @property
    def backend(self) -> str:
        return "embedded"

    @property
    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh autocommit connection, closed on exit; sqlite errors become MemoryUnavailable."""
        if self._closed:
            raise MemoryUnavailable(f"embedded memory at {self.path} is closed")
        try:
            with closing(
                sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            ) as conn:
                conn.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode
                yield conn
        except sqlite3.Error as exc:
            raise MemoryUnavailable(f"embedded memory at {self.path} failed: {exc}") from exc

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction that holds the lock from its first statement."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _write(self, run_id: str, key: str, text: str) -> None:
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            upsert = (
                "INSERT INTO kv(key, value, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated"
            )
            conn.execute(upsert, (key, text, now))
            conn.execute("INSERT OR IGNORE INTO runs(run_id, created) VALUES (?, ?)", (run_id, now))
            conn.execute(upsert, (LATEST_KEY, run_id, now))

        self._transaction(write)

    def _read(self, key: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _scan(self, prefix: str) -> list[str]:
        # A range on the primary key: exact (no LIKE wildcards to escape) and uses the index.
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT key FROM kv WHERE key >= ? AND key < ?", (prefix, _upper_bound(prefix))
            ).fetchall()
        return [row[0] for row in rows]

    def runs(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute("SELECT run_id FROM runs ORDER BY seq").fetchall()
        return [row[0] for row in rows]

    def _delete_run(self, run_id: str) -> None:
        prefix = run_prefix(run_id)

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (prefix, _upper_bound(prefix)))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (LATEST_KEY,)).fetchone()
            if row is not None and row[0] == run_id:
                newest = conn.execute("SELECT run_id FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
                if newest is None:
                    conn.execute("DELETE FROM kv WHERE key = ?", (LATEST_KEY,))
                else:
                    conn.execute(
                        "UPDATE kv SET value = ?, updated = ? WHERE key = ?",
                        (newest[0], time.time(), LATEST_KEY),
                    )

        self._transaction(delete)

    def close(self) -> None:
        self._closed = True

    def ping(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1").fetchone()
        except MemoryUnavailable:
            return False
        return True
