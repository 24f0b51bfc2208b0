"""The default executor: every fit in this process, one after the other (Ray is never imported)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from ml_expert.tools.execution_report import ExecutionReport
from ml_expert.tools.mapping import sequential_map

ProgressSink = Callable[[ExecutionReport], None]


class LocalExecutor:
    """Runs `fn(spec, shared)` for each spec here; counts them as tasks of this host."""

    def __init__(self, on_progress: ProgressSink | None = None) -> None:
        self.report = ExecutionReport(mode="local")
        self.on_progress = on_progress
        self._host = f"{socket.gethostname()} (this process)"

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        specs: Sequence[Any],
        shared: Any,
        *,
        label: str = "",
        time_limit: float | None = None,
        keep_first: int = 1,
    ) -> list[Any | None]:
        self.report.batches.append(label)

        def counted(spec: Any, data: Any) -> Any:
            self.report.tasks_in_flight = 1
            result = fn(spec, data)
            self.report.tasks_in_flight = 0
            self.report.tasks_done += 1
            self.report.tasks_per_node[self._host] = self.report.tasks_per_node.get(self._host, 0) + 1
            if self.on_progress:
                self.on_progress(self.report)
            return result

        return sequential_map(
            counted, specs, shared, label=label, time_limit=time_limit, keep_first=keep_first
        )

    def close(self) -> None:
        """Nothing to stop."""
