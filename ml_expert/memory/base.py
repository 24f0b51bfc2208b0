"""The `ml-expert/*` memory namespace: one small interface, several backends.

Keys are ``ml-expert/<run_id>/<key>`` and values are JSON text, so any agent in a larger
workflow can read a finding with a plain client (``GET ml-expert/<run_id>/metrics``).
``ml-expert/latest`` holds the id of the run written to most recently, as plain text (not a
JSON string) so that shell scripts can use it directly.

Validation, key building and JSON encoding live here, once, so every backend agrees on
what is a legal key and what is stored; backends only move text.
"""

from __future__ import annotations

import json
import math
import os
import re
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NAMESPACE = "ml-expert"
LATEST_KEY = f"{NAMESPACE}/latest"
#: Run ids the namespace keeps for itself: ``latest`` and anything starting with ``_``.
RESERVED_RUN_IDS = frozenset({"latest"})
MAX_RUN_ID_LENGTH = 128
#: Keys become file names in the run directory (``/`` -> ``__``), which must stay < 255 bytes.
MAX_KEY_LENGTH = 200

_FORBIDDEN_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")


class MemoryUnavailable(Exception):
    """The memory backend cannot be reached or failed; the message names where it lives.

    Callers that must not lose findings (the agents) catch this and keep the run directory
    as the source of truth; see :class:`ml_expert.memory.recorder.FindingsRecorder`.
    """


def _check_text(kind: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"memory {kind} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise ValueError(f"memory {kind} {value[:40]!r}... is longer than {max_length} characters")
    if _FORBIDDEN_CHARS.search(value):
        raise ValueError(
            f"memory {kind} {value!r} must not contain whitespace, control characters or backslashes"
        )
    if ".." in value:
        raise ValueError(f"memory {kind} {value!r} must not contain '..'")
    return value


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it can name a run in the namespace, else raise ``ValueError``."""
    _check_text("run_id", run_id, MAX_RUN_ID_LENGTH)
    assert isinstance(run_id, str)
    if "/" in run_id:
        raise ValueError(f"memory run_id {run_id!r} must not contain '/'")
    if run_id in RESERVED_RUN_IDS or run_id.startswith("_"):
        raise ValueError(
            f"memory run_id {run_id!r} is reserved by the {NAMESPACE} namespace "
            "('latest' and ids starting with '_')"
        )
    return run_id


def validate_key(key: object) -> str:
    """Return ``key`` if it is a legal finding key (``/`` allowed between non-empty parts)."""
    _check_text("key", key, MAX_KEY_LENGTH)
    assert isinstance(key, str)
    if key.startswith("/") or key.endswith("/") or "//" in key:
        raise ValueError(f"memory key {key!r} must not start or end with '/' or contain '//'")
    if any(part == "." for part in key.split("/")):
        raise ValueError(f"memory key {key!r} must not contain '.' as a path part")
    return key


def full_key(run_id: str, key: str) -> str:
    """The namespaced key ``ml-expert/<run_id>/<key>`` after validating both parts."""
    return f"{NAMESPACE}/{validate_run_id(run_id)}/{validate_key(key)}"


def run_prefix(run_id: str) -> str:
    """Prefix shared by every key of one run (ends with ``/``)."""
    return f"{NAMESPACE}/{validate_run_id(run_id)}/"


def split_full_key(key: str) -> tuple[str, str]:
    """Split ``ml-expert/<run_id>/<key>`` into ``(run_id, key)``, validating both."""
    if not isinstance(key, str) or not key.startswith(f"{NAMESPACE}/"):
        raise ValueError(f"memory key {key!r} is not inside the {NAMESPACE}/ namespace")
    rest = key[len(NAMESPACE) + 1 :]
    run_id, sep, sub = rest.partition("/")
    if not sep:
        raise ValueError(
            f"memory key {key!r} is not a finding key; expected {NAMESPACE}/<run_id>/<key> or {LATEST_KEY}"
        )
    return validate_run_id(run_id), validate_key(sub)


def _jsonable(value: Any) -> Any:
    """Plain-JSON copy of ``value``.

    Non-finite floats become ``null`` because strict JSON parsers (JavaScript, jq) reject
    ``NaN``; NumPy scalars and arrays are accepted through ``item()``/``tolist()`` so agents
    need not convert metrics by hand, without importing NumPy here.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                raise TypeError(f"memory values need string keys, got key {k!r} of type {type(k).__name__}")
            out[k if isinstance(k, str) else json.dumps(k)] = _jsonable(v)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # NumPy arrays and scalars
        return _jsonable(tolist())
    item = getattr(value, "item", None)
    if callable(item):
        return _jsonable(item())
    raise TypeError(f"memory values must be JSON-serialisable, got {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Encode a value as strict JSON text (the form stored in every backend)."""
    separators = (",", ":") if indent is None else None
    return json.dumps(
        _jsonable(value), ensure_ascii=False, allow_nan=False, indent=indent, separators=separators
    )


def loads(text: str, key: str) -> Any:
    """Decode stored JSON text, naming the key when someone stored something else there."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"memory key {key!r} does not hold JSON: {exc}") from exc


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class MemoryStore(ABC):
    """Where agents share findings under ``ml-expert/<run_id>/<key>``.

    Public methods validate and encode once here; a backend implements the small set of
    text-level primitives below. Backend failures raise :class:`MemoryUnavailable`;
    illegal run ids or keys raise ``ValueError``; unserialisable values raise ``TypeError``.
    """

    # -- what a backend provides ------------------------------------------------------

    @property
    @abstractmethod
    def backend(self) -> str:
        """Short backend name (``"redis"``, ``"embedded"``) for status output."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives (redacted URL or file path), for messages."""

    @abstractmethod
    def _write(self, run_id: str, key: str, text: str) -> None:
        """Store ``text`` at full key ``key``, register ``run_id`` and point latest at it, atomically."""

    @abstractmethod
    def _read(self, key: str) -> str | None:
        """Raw text at full key ``key`` (also used for ``ml-expert/latest``)."""

    @abstractmethod
    def _scan(self, prefix: str) -> list[str]:
        """Every stored full key starting with ``prefix`` (any order)."""

    @abstractmethod
    def runs(self) -> list[str]:
        """Run ids, oldest first (by when the run's first finding was stored)."""

    @abstractmethod
    def _delete_run(self, run_id: str) -> None:
        """Remove a run's keys and registration; move latest to the newest remaining run."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers now; never raises."""

    # -- the contract -----------------------------------------------------------------

    def put(self, run_id: str, key: str, value: Any) -> None:
        """Store ``value`` as JSON at ``ml-expert/<run_id>/<key>`` and make ``run_id`` the latest run."""
        full = full_key(run_id, key)
        self._write(run_id, full, dumps(value))

    def get(self, run_id: str, key: str) -> Any | None:
        """The decoded value at ``ml-expert/<run_id>/<key>``, or None when absent."""
        return self.get_full(full_key(run_id, key))

    def get_full(self, full_key: str) -> Any | None:
        """Read by full key: ``ml-expert/latest`` gives the run id, anything else its decoded JSON."""
        if full_key == LATEST_KEY:
            return self.latest()
        split_full_key(full_key)
        text = self._read(full_key)
        return None if text is None else loads(text, full_key)

    def keys(self, run_id: str | None = None) -> list[str]:
        """Sorted full keys of one run's findings, or of every run's when ``run_id`` is None."""
        if run_id is not None:
            return sorted(self._scan(run_prefix(run_id)))
        # Only ml-expert/<run>/<key>: bookkeeping keys (latest, _runs) have no second '/'.
        return sorted(k for k in self._scan(f"{NAMESPACE}/") if k.count("/") >= 2)

    def latest(self) -> str | None:
        """Id of the run written to most recently, or None on an empty store."""
        return self._read(LATEST_KEY) or None

    def delete_run(self, run_id: str) -> None:
        """Forget a run; ``latest`` falls back to the newest remaining run (or disappears)."""
        self._delete_run(validate_run_id(run_id))

    def check(self) -> None:
        """Raise :class:`MemoryUnavailable` naming the location unless the backend answers now."""
        if not self.ping():
            raise MemoryUnavailable(f"{self.backend} memory at {self.location} is not reachable")

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
