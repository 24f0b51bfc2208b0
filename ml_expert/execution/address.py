"""The `--ray ADDRESS` forms, checked without importing Ray (the CLI validates before it starts)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ml_expert.errors import UsageError


def resolve_address(address: str) -> str:
    """`local`, `auto` (RAY_ADDRESS), `host:port` or `ray://host:port`; anything else is a usage error."""
    if address == "local":
        return address
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS", "").strip()
        if not env:
            raise UsageError("--ray auto reads the cluster address from RAY_ADDRESS, which is not set")
        address = env
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "ray") or not parts.hostname or port is None:
        raise UsageError(
            f"{address!r} is not a Ray address: expected local, auto, HOST:PORT or ray://HOST:PORT"
        )
    return address
