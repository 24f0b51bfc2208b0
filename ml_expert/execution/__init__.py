"""Where independent fits run: in this process (the default), or as tasks on a Ray cluster.

Agents choose the executor (`executor_for`); tools only receive its `map`. One executor per
address per process: the phases of a run share it, and `close_executors` (the run's end, and at
exit) stops a throw-away local cluster the run started.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import Any, Protocol

from ml_expert.errors import UsageError
from ml_expert.execution.local import LocalExecutor
from ml_expert.tools.execution_report import ExecutionReport

__all__ = [
    "Executor",
    "LocalExecutor",
    "close_executors",
    "executor_for",
]

DEFAULT_MAX_RETRIES = 2


class Executor(Protocol):
    report: ExecutionReport
    on_progress: Callable[[ExecutionReport], None] | None

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        specs: Any,
        shared: Any,
        *,
        label: str = "",
        time_limit: float | None = None,
        keep_first: int = 1,
    ) -> list[Any | None]: ...

    def close(self) -> None: ...


_OPEN: dict[str, Executor] = {}


def executor_for(
    address: str | None,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    on_progress: Callable[[ExecutionReport], None] | None = None,
) -> Executor:
    """No address: this process. An address: a Ray cluster (Ray imported only here)."""
    if not address:
        return LocalExecutor(on_progress)
    if address not in _OPEN:
        try:
            from ml_expert.execution.ray_cluster import RayExecutor
        except ImportError as exc:
            raise UsageError(f"--ray needs Ray: pip install 'ml-expert[ray]' ({exc})") from None

        _OPEN[address] = RayExecutor(address, max_retries=max_retries)
    executor = _OPEN[address]
    executor.on_progress = on_progress
    return executor


def close_executors() -> None:
    """Disconnect from every cluster; stop the local ones this process started."""
    while _OPEN:
        _, executor = _OPEN.popitem()
        executor.close()


atexit.register(close_executors)
