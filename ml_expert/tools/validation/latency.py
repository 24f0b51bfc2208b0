"""Latency and throughput of a predict function: what a caller of one row, or of a batch, sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

SINGLE_ROW_CALLS = 200
"""Single-row calls timed per format: enough for a p99 (two slowest calls)."""

SINGLE_ROW_SECONDS = 2.0
MIN_SINGLE_ROW_CALLS = 20
"""A slow format stops after this many seconds of single-row calls (but not before 20 calls): a
300-tree forest through joblib takes ~50 ms a row, and 200 of them would be 10 s of a run spent
timing one format. The figures say how many calls were timed."""

WARMUP_CALLS = 5
BATCH_REPEATS = 3


class Latency(BaseModel):
    """What `measure` found: single-row percentiles in milliseconds and batch throughput. The
    deployment result carries the package's (read by the release gate), validated."""

    model_config = ConfigDict(extra="forbid")

    single_row_calls: int  # how many single-row calls were timed (a slow format stops early)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    batch_rows: int
    batch_rows_per_second: float


def measure(
    predict: Callable[[Any], Any],
    single_rows: list[Any],
    batch: Any,
    batch_rows: int,
    calls: int = SINGLE_ROW_CALLS,
    max_seconds: float | None = SINGLE_ROW_SECONDS,
) -> Latency:
    """Time `predict` on one row at a time (cycling through `single_rows`) and on `batch`."""
    for i in range(WARMUP_CALLS):
        predict(single_rows[i % len(single_rows)])
    timings = np.empty(calls)
    began = time.perf_counter()
    done = 0
    for i in range(calls):
        row = single_rows[i % len(single_rows)]
        start = time.perf_counter()
        predict(row)
        timings[i] = time.perf_counter() - start
        done = i + 1
        if max_seconds is not None and done >= MIN_SINGLE_ROW_CALLS and start - began > max_seconds:
            break
    timings = timings[:done]
    predict(batch)
    best = float("inf")
    for _ in range(BATCH_REPEATS):
        start = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - start)
    ms = timings * 1000.0
    return Latency(
        single_row_calls=done,
        p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)),
        p99_ms=float(np.percentile(ms, 99)),
        batch_rows=int(batch_rows),
        batch_rows_per_second=float(batch_rows / best) if best > 0 else float("inf"),
    )
