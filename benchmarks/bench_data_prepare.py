"""Time phase 1 (`prepare_data`) on every shared dataset: `python -m benchmarks.bench_data_prepare`.

Prints one JSON line per dataset: rows, features in/out, rows dropped and why, seconds (median
of `--repeat` runs). Heavy by design; the test suite keeps its own files tiny.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
