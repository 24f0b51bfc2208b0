"""In-process inference: single-row p50/p99 latency and batch rows/s for every export of a model.

Trains the demo model through the CLI (`ml-expert run --json`, default budget) unless given a run
directory, then loads each export the way a user would and times it:
  deployment package   ModelInference (onnxruntime, preprocessing inside, raw rows as dicts)
  <model>/onnx         onnxruntime session on the composed graph (raw columns)
  <model>/joblib       the scikit-learn pipeline (raw frame), default threads
  dnn/keras, dnn/h5    Keras predict_on_batch (preprocessed matrix)
  dnn/savedmodel       tf.saved_model.load(...).serve (preprocessed matrix)
  dnn/tflite           ai_edge_litert Interpreter (preprocessed matrix)
The Keras-side formats take the preprocessed matrix (their preprocessing is a separate
scikit-learn transform, not timed); ONNX and the package take raw rows and include it. ONNX is
also timed on input tensors prepared beforehand ("session.run only"), which separates
onnxruntime's cost from the pandas-to-tensor conversion.

    python benchmarks/inference.py [--run-dir DIR] [--calls 500]
    python benchmarks/inference.py --smoke --run-dir DIR --out-dir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, Recorder, ml_expert_command, run_child, work_dir  # noqa: E402

BATCH = 1000


def time_calls(call: Callable[[int], Any], calls: int, warmup: int = 10) -> dict[str, float]:
    """Latency of `call(i)` over `calls` calls after a warm-up, in milliseconds."""
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p95_ms": _quantile(samples, 0.95),
        "p99_ms": _quantile(samples, 0.99),
        "mean_ms": statistics.fmean(samples),
        "calls": calls,
    }


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def throughput(call: Callable[[], Any], rows: int, min_seconds: float) -> float:
    call()
    done, started = 0, time.perf_counter()
    while True:
        call()
        done += rows
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and done >= 3 * rows:
            return done / elapsed


SIZES: dict[str, int] = {}


def runners(run_dir: Path) -> dict[str, tuple[Callable[[Any], Any], str]]:
    """name -> (predict(rows), input kind) for every export found in the run (sizes into SIZES)."""
    import joblib

    from ml_expert.tools.data.schema import InputSchema, to_model_frame, to_onnx_feed

    schema = InputSchema.model_validate(json.loads((run_dir / "data" / "schema.json").read_text()))
    found: dict[str, tuple[Callable[[Any], Any], str]] = {}
    package = run_dir / "deployment"
    if (package / "manifest.json").exists():
        sys.path.insert(0, str(package))
        from ml_expert.runtime.inference import ModelInference

        model = ModelInference(str(package))
        found["deployment package (ModelInference)"] = (model.predict, "records")
        SIZES["deployment package (ModelInference)"] = size_on_disk(package)
    for folder in sorted((run_dir / "exports").iterdir()):
        name = folder.name
        if (folder / "model.onnx").exists():
            import onnxruntime as ort

            session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
            SIZES[f"{name}/onnx (onnxruntime)"] = size_on_disk(folder / "model.onnx")
            found[f"{name}/onnx (onnxruntime)"] = (
                lambda frame, s=session: s.run(None, to_onnx_feed(frame, schema)),
                "frame",
            )
            # the same session with the input tensors prepared beforehand: onnxruntime's own cost
            SIZES[f"{name}/onnx (session.run only)"] = SIZES[f"{name}/onnx (onnxruntime)"]
            found[f"{name}/onnx (session.run only)"] = (lambda feed, s=session: s.run(None, feed), "feed")
        if (folder / "model.joblib").exists():
            pipeline = joblib.load(folder / "model.joblib")
            method = pipeline.predict_proba if hasattr(pipeline, "predict_proba") else pipeline.predict
            SIZES[f"{name}/joblib (scikit-learn)"] = size_on_disk(folder / "model.joblib")
            found[f"{name}/joblib (scikit-learn)"] = (
                lambda frame, m=method: m(to_model_frame(frame, schema)),
                "frame",
            )
        if (folder / "model.keras").exists() or (folder / "savedmodel").exists():
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras

            for fmt in ("keras", "h5"):
                path = folder / f"model.{fmt}"
                if path.exists():
                    model = keras.saving.load_model(path, compile=False)
                    SIZES[f"{name}/{fmt} (predict_on_batch)"] = size_on_disk(path)
                    found[f"{name}/{fmt} (predict_on_batch)"] = (
                        lambda x, m=model: m.predict_on_batch(x),
                        "matrix",
                    )
        if (folder / "savedmodel").exists():
            import tensorflow as tf

            loaded = tf.saved_model.load(str(folder / "savedmodel"))
            SIZES[f"{name}/savedmodel (serve)"] = size_on_disk(folder / "savedmodel")
            found[f"{name}/savedmodel (serve)"] = (
                lambda x, keep=loaded: keep.serve(tf.constant(x)),
                "matrix",
            )
        if (folder / "model.tflite").exists():
            from ai_edge_litert.interpreter import Interpreter

            SIZES[f"{name}/tflite (LiteRT)"] = size_on_disk(folder / "model.tflite")
            found[f"{name}/tflite (LiteRT)"] = (_litert(Interpreter, folder / "model.tflite"), "matrix")
    found["__schema__"] = (schema, "")  # type: ignore[assignment]
    return found


def _litert(interpreter_cls, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One interpreter, resized only when the batch size changes (resizing reallocates)."""
    interpreter = interpreter_cls(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    shape: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        if list(x.shape) != shape:
            interpreter.resize_tensor_input(inp["index"], list(x.shape))
            interpreter.allocate_tensors()
            shape[:] = list(x.shape)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return predict


def benchmark(run_dir: Path, calls: int, min_seconds: float) -> list[dict[str, Any]]:
    import joblib
    import pandas as pd

    from ml_expert.tools.data.schema import to_model_frame, to_onnx_feed

    found = runners(run_dir)
    schema = found.pop("__schema__")[0]
    frame = pd.concat(
        [pd.read_parquet(run_dir / "data" / f"{s}.parquet") for s in ("val", "test")], ignore_index=True
    )
    frame = frame[schema.keys].rename(columns=dict(zip(schema.keys, schema.names, strict=True)))
    preprocessor = joblib.load(run_dir / "data" / "preprocessor.joblib")
    matrix = np.asarray(preprocessor.transform(to_model_frame(frame, schema)), dtype=np.float32)
    records = frame.to_dict(orient="records")
    reps = -(-BATCH // len(frame))
    batch_frame = pd.concat([frame] * reps, ignore_index=True).iloc[:BATCH]
    batch_matrix = np.tile(matrix, (reps, 1))[:BATCH]
    feeds = [to_onnx_feed(frame.iloc[[i]], schema) for i in range(len(frame))]
    inputs = {
        "feed": (lambda i: feeds[i % len(feeds)], to_onnx_feed(batch_frame, schema)),
        "frame": (lambda i: frame.iloc[[i % len(frame)]], batch_frame),
        "matrix": (lambda i: matrix[i % len(matrix)][None, :], batch_matrix),
        "records": (lambda i: [records[i % len(records)]], batch_frame.to_dict(orient="records")),
    }
    rows = []
    for name, (predict, kind) in found.items():
        single, batch = inputs[kind]
        row_inputs = [single(i) for i in range(len(frame))]
        latency = time_calls(lambda i, p=predict, r=row_inputs: p(r[i % len(r)]), calls)
        rate = throughput(lambda p=predict, b=batch: p(b), BATCH, min_seconds)
        rows.append({"format": name, "input": kind, **latency, "batch_rows": BATCH, "rows_per_second": rate,
                     "size_bytes": SIZES.get(name)})  # fmt: skip
        print(f"{name}: p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms, {rate:,.0f} rows/s")
    return rows


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, help="an existing run (default: train the demo model)")
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--calls", type=int, default=500, help="single-row calls per format")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time spent on batches per format")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.smoke:
        args.calls, args.min_seconds = 20, 0.05
    run_dir = args.run_dir
    trained = None
    if run_dir is None:
        workspace = work_dir() / "inference"
        shutil.rmtree(workspace, ignore_errors=True)
        child = run_child(
            ml_expert_command("run", "--json", "--budget", str(args.budget), "--workspace", str(workspace))
        ).check()
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
        run_dir = Path(outcome["run_dir"])
        trained = {"chosen_model": outcome["chosen_model"], "wall_seconds": child.wall_seconds}
    recorder = Recorder(
        "inference",
        {"model": "demo (breast_cancer)" if args.run_dir is None else "given run", "calls": args.calls,
         "batch_rows": BATCH, "min_seconds": args.min_seconds, "smoke": args.smoke,
         "threads": "library defaults"},
        argv,
    )  # fmt: skip
    rows = benchmark(run_dir, args.calls, args.min_seconds)
    package = next((r for r in rows if r["format"].startswith("deployment package")), None)
    target = {
        "target": "deployment package (inference.py) single-row p99 <= 1 ms (release issue)",
        "value": None if package is None else package["p99_ms"],
        "met": None if package is None else package["p99_ms"] <= 1.0,
    }
    return recorder.save({"trained": trained, "rows": rows, "target": target}, args.out_dir)


if __name__ == "__main__":
    print(main())
