"""The `--ray ADDRESS` forms, checked without importing Ray (the CLI validates before it starts)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ml_expert.errors import UsageError

ENV = "ML_EXPERT_RAY"


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
        raise UsageError(f"--ray {address!r}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    return address


def address_from(given: str | None) -> str | None:
    """The run's cluster: the option when given, else ML_EXPERT_RAY, else None (this process)."""
    value = (given if given is not None else os.environ.get(ENV, "")).strip()
    return resolve_address(value) if value else None


def check_workers(workers: int | None, address: str | None) -> int:
    """`--workers N` (data-parallel network training) needs a cluster to put the workers on."""
    workers = 1 if workers is None else int(workers)
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if workers > 1 and not address:
        raise UsageError("--workers N > 1 trains on a Ray cluster: give --ray ADDRESS (or local)")
    return workers
