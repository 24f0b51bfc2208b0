"""How a tool runs many independent fits: through a map function it is given.

A tool never knows where its fits run. It calls `map_fn(fn, specs, shared, ...)` with a plain
module-level function `fn(spec, shared) -> result`; the default runs them here, one after the
other, and `ml_expert.execution` supplies one that runs them as tasks on a Ray cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

S = TypeVar("S")
R = TypeVar("R")


class MapFn(Protocol):
    def __call__(
        self,
        fn: Callable[[Any, Any], Any],
        specs: Sequence[Any],
        shared: Any,
        *,
        label: str = "",
        time_limit: float | None = None,
        keep_first: int = 1,
    ) -> list[Any | None]:
        """One result per spec, in order; None for a spec not run because time_limit was reached."""
        ...


def sequential_map(
    fn: Callable[[S, Any], R],
    specs: Sequence[S],
    shared: Any,
    *,
    label: str = "",
    time_limit: float | None = None,
    keep_first: int = 1,
) -> list[R | None]:
    """Run each spec in turn; stop starting new ones when the next, at the mean pace so far,
    would end past time_limit (the first `keep_first` always run). Skipped specs give None."""
    started = time.perf_counter()
    results: list[R | None] = []
    for index, spec in enumerate(specs):
        elapsed = time.perf_counter() - started
        if time_limit is not None and index >= max(keep_first, 1) and elapsed + elapsed / index > time_limit:
            return results + [None] * (len(specs) - index)
        results.append(fn(spec, shared))
    return results
