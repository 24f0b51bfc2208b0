"""Scale: end-to-end `ml-expert run` wall time and peak RSS against rows, and the growth exponent.

make_classification (20 features, seeded) at each size, written to CSV, plus the real diamonds.csv
(53,940 rows, regression); each is one `ml-expert run FILE --json` child at the given budget (the
CLI default unless told). The exponent is the slope of log(wall) on log(rows) over the synthetic
sizes; since the budget caps model selection plus training, it measures the rest of the pipeline
(loading, preprocessing, exports) plus the capped part.

    python benchmarks/scale.py --sizes 10000 100000 1000000
    python benchmarks/scale.py --smoke --out-dir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, Recorder, datasets_dir, ml_expert_command, run_child, work_dir  # noqa: E402

LIMIT_SECONDS_1M = 20 * 60
LIMIT_RSS_MB = 3 * 1024


def synthetic_csv(rows: int, path: Path, seed: int = 0) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=seed)
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"x{i}" for i in range(20)])
    frame["target"] = y
    frame.to_csv(path, index=False, float_format="%.6g")
    return path


def growth_exponent(rows: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows); 1.0 is linear."""
    if len(rows) < 2:
        return None
    return float(np.polyfit(np.log(rows), np.log(seconds), 1)[0])


def _selection(run_dir: str | None) -> dict[str, Any]:
    """Model selection's own seconds against the budget, the sample it fit on and the candidates the
    cap stopped, from the run's model-selection finding (read before the workspace is removed)."""
    path = Path(run_dir or "/nonexistent") / "findings" / "model-selection.json"
    if not path.exists():
        return {}
    finding = json.loads(path.read_text())
    sample = finding.get("sample") or {}
    return {
        "selection_seconds": finding.get("seconds"),
        "selection_budget": finding.get("budget"),
        "fit_rows": sample.get("train_rows"),
        "candidates": [c["name"] for c in finding.get("leaderboard", [])],
        "stopped": [
            f"{s['name']} ({'stopped' if s['started'] else 'not started'})"
            for s in finding.get("stopped", [])
        ],
    }


def run_one(label: str, csv: Path, rows: int, budget: float | None, extra: list[str]) -> dict[str, Any]:
    workspace = work_dir() / "scale" / f"ws-{label}"
    shutil.rmtree(workspace, ignore_errors=True)
    cmd = ml_expert_command("run", str(csv), "--json", "--workspace", str(workspace), *extra)
    if budget is not None:
        cmd += ["--budget", str(budget)]
    child = run_child(cmd, timeout=3 * 3600)
    try:
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        outcome = {"ok": False, "error": child.stderr[-500:]}
    selection = _selection(outcome.get("run_dir"))
    shutil.rmtree(workspace, ignore_errors=True)
    row = {
        "data": label,
        "rows": rows,
        "wall_seconds": child.wall_seconds,
        "peak_rss_mb": child.peak_rss_mb,
        "exit_code": child.returncode,
        "status": outcome.get("status"),
        "chosen_model": outcome.get("chosen_model"),
        "error": None if outcome.get("ok") else (outcome.get("error") or outcome.get("reason")),
        **selection,
    }
    print(f"{label}: {row['wall_seconds']:.1f} s, {row['peak_rss_mb']:.0f} MB, {row['status']}", flush=True)
    return row


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--budget", type=float, help="--budget for ml-expert (default: the CLI's)")
    parser.add_argument("--no-diamonds", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="300 rows, no network, no diamonds")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if args.smoke:
        args.sizes, args.budget, args.no_diamonds, extra = [300], 30.0, True, ["--no-dnn"]
    recorder = Recorder(
        "scale",
        {"sizes": args.sizes, "budget_seconds": args.budget or "CLI default (120)", "features": 20,
         "diamonds": not args.no_diamonds, "smoke": args.smoke, "extra_flags": extra},
        argv,
    )  # fmt: skip
    folder = work_dir() / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        csv = synthetic_csv(size, folder / f"synthetic-{size}.csv")
        rows.append(run_one(f"make_classification {size:,}", csv, size, args.budget, extra))
        csv.unlink()
    if not args.no_diamonds:
        rows.append(run_one("diamonds.csv", datasets_dir() / "diamonds.csv", 53_940, args.budget, extra))
    synthetic = [r for r in rows if r["data"].startswith("make_classification") and r["error"] is None]
    exponent = growth_exponent([r["rows"] for r in synthetic], [r["wall_seconds"] for r in synthetic])
    million = next((r for r in synthetic if r["rows"] == 1_000_000), None)
    targets = {
        "growth": {"target": "growth exponent <= 1.0 (no worse than linear)",
                   "value": None if exponent is None else round(exponent, 3),
                   "met": None if exponent is None else exponent <= 1.0},
        "time_1m": {"target": "1M rows end to end < 20 min",
                    "value": None if million is None else round(million["wall_seconds"], 1),
                    "met": None if million is None else million["wall_seconds"] < LIMIT_SECONDS_1M},
        "memory": {"target": "peak RSS < 3 GB at every size",
                   "value": round(max((r["peak_rss_mb"] for r in rows), default=math.nan), 1),
                   "met": all(r["peak_rss_mb"] < LIMIT_RSS_MB for r in rows),
                   "largest_size_run": max((r["rows"] for r in synthetic), default=None)},
    }  # fmt: skip
    return recorder.save({"rows": rows, "growth_exponent": exponent, "targets": targets}, args.out_dir)


if __name__ == "__main__":
    print(main())
