"""Time phase 1 (`prepare_data`) on every shared dataset: `python -m benchmarks.bench_data_prepare`.

Prints one JSON line per dataset: rows, features in/out, rows dropped and why, seconds (median
of `--repeat` runs). Heavy by design; the test suite keeps its own files tiny.

`--formatted-numbers ROWS` times instead the reading of numbers written for people on made-up
text columns of ROWS values: detection (`detect_number_format`) and reading (`read_formatted`) of
"$1,234.56" prices, of plain text, and of prices mixed with text (4 % and 50 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml_expert.tools.data.numbers import detect_number_format, read_formatted
from ml_expert.tools.data.prepare import prepare_data

REPO = Path(__file__).resolve().parents[1]
# A clone sits next to shared/; a worktree one level deeper.
DEFAULT_DIR = next(
    (
        p
        for p in (REPO.parent / "shared" / "datasets", REPO.parent.parent / "shared" / "datasets")
        if p.exists()
    ),
    REPO / "ml_expert" / "datasets",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formatted-numbers", type=int, metavar="ROWS")
    args = parser.parse_args()
    if args.formatted_numbers:
        formatted_numbers(args.formatted_numbers, args.repeat)
        return
    for path in sorted(args.datasets.glob("*.csv")):
        seconds = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                prepared = prepare_data(str(path), "target", 0, Path(tmp))
                seconds.append(time.perf_counter() - start)
        print(
            json.dumps(
                {
                    "dataset": path.name,
                    "rows_in": prepared.rows_in,
                    "modality": prepared.modality,
                    "features_in": len(prepared.input_schema.names) + len(prepared.dropped_columns),
                    "features_out": prepared.n_features_out,
                    "dropped_columns": len(prepared.dropped_columns),
                    "duplicates_removed": prepared.duplicates_removed,
                    "outliers_removed": prepared.outliers.get("dropped", 0),
                    "split_sizes": prepared.split_sizes.model_dump(),
                    "median_s": round(statistics.median(seconds), 3),
                }
            )
        )


def formatted_numbers(rows: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    prices = pd.Series([f"${v:,.2f}" for v in rng.uniform(-5_000, 200_000, rows)], dtype="str")
    words = np.array(["red car", "blue van", "green bike", "call us"], dtype=object)
    text = pd.Series(rng.choice(words, rows) + rng.integers(0, 1000, rows).astype(str), dtype="str")
    columns = {"currency": prices, "text": text}
    for share in (0.04, 0.5):
        mixed = prices.copy()
        mixed[rng.random(rows) < share] = "call us"
        columns[f"mixed {share:.0%} text"] = mixed
    for name, column in columns.items():
        detect, read = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            found = detect_number_format(column)
            detect.append(time.perf_counter() - start)
            if found is not None:
                start = time.perf_counter()
                read_formatted(column, found)
                read.append(time.perf_counter() - start)
        figures = {"column": name, "rows": rows, "format": found.example if found else None}
        figures["detect_median_s"] = round(statistics.median(detect), 3)
        if read:
            figures["read_median_s"] = round(statistics.median(read), 3)
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
