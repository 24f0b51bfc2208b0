"""The CPU path before and after issue #16: the same network trained with one step per call (as
before) and with the steps per call the execution plan chooses, alternating which goes first,
on the demo data (breast cancer, the planned dense network) and on 100,000 synthetic rows.

    python benchmarks/training_cpu.py [--repeats 3] [--rows 100000]

Writes benchmarks/results/training_cpu.json: the first epoch (with the compile) and the mean of the
later epochs, per setting and repeat, and the medians' ratio (after / before; below 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import load_average, machine  # noqa: E402


def _data(name: str, rows: int):
    import numpy as np
    import pandas as pd

    if name == "demo":
        frame = pd.read_csv(ROOT / "ml_expert" / "datasets" / "breast_cancer.csv")
        x = frame.drop(columns="target").to_numpy("float32")
        x = (x - x.mean(0)) / x.std(0)
        y = frame["target"].to_numpy("float32")
    else:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(rows, 40)).astype("float32")
        y = ((x @ rng.normal(size=40) + rng.normal(0, 0.5, rows)) > 0).astype("float32")
    cut = len(x) * 85 // 100
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _epoch_times(data, steps: int, epochs: int) -> list[float]:
    import keras

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    x, y, xv, yv = data
    config = DNNConfig(max_epochs=epochs, patience=epochs + 1, steps_per_execution=steps)
    model = build_dnn(x.shape[1], "classification", 2, config, seed=0)
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_dnn(
            model, x, y, xv, yv, config, Path(tmp), on_epoch=lambda *_: marks.append(time.perf_counter())
        )
    keras.backend.clear_session()
    edges = [start, *marks]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def main() -> None:
    from ml_expert.tools.selection.budget import dense_flops
    from ml_expert.tools.training.throughput import plan_execution

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/training_cpu.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load_before": load_average(),
        "protocol": {"repeats": args.repeats, "rows": args.rows, "order": "alternated each repeat"},
        "cases": {},
    }
    for name, epochs in (("demo", 20), ("synthetic", 4)):
        data = _data(name, args.rows)
        plan = plan_execution(
            backend="tensorflow",
            gpu=False,
            rows=len(data[0]),
            data_bytes=int(data[0].nbytes),
            forward_flops=dense_flops(data[0].shape[1], [128, 64], 2),
            batch_size=32,
            learning_rate=1e-3,
        )
        settings = {"before": 1, "after": plan.steps_per_execution}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for repeat in range(args.repeats):
            order = ["before", "after"] if repeat % 2 == 0 else ["after", "before"]
            for label in order:
                times = _epoch_times(data, settings[label], epochs)
                runs[label].append(
                    {
                        "first_epoch_s": round(times[0], 3),
                        "later_epoch_s": round(statistics.mean(times[1:]), 4),
                    }
                )
        med = {k: statistics.median(r["later_epoch_s"] for r in v) for k, v in runs.items()}
        first = {k: statistics.median(r["first_epoch_s"] for r in v) for k, v in runs.items()}
        report["cases"][name] = {
            "rows": len(data[0]),
            "epochs": epochs,
            "steps_per_execution": settings,
            "runs": runs,
            "later_epoch_ratio_after_over_before": round(med["after"] / med["before"], 3),
            "first_epoch_ratio_after_over_before": round(first["after"] / first["before"], 3),
        }
        print(name, report["cases"][name]["later_epoch_ratio_after_over_before"], flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_after"] = load_average()
    out = ROOT / "benchmarks" / "results" / "training_cpu.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
