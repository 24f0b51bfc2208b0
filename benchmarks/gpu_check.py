"""GPU check for the training tools, run on a lent GPU machine (no TensorFlow there).

Trains the same Keras network the pipeline builds, with KERAS_BACKEND=torch (or jax), on the
GPU with mixed precision and a bigger batch, samples nvidia-smi utilisation while it trains, and
checks the float32 copy that gets exported predicts like the mixed-precision model. Writes one
JSON object to $OUT/gpu_check.json (or stdout).

    KERAS_BACKEND=torch python benchmarks/gpu_check.py
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def probe() -> dict:
    found = {}
    for name in ("keras", "torch", "jax", "numpy", "pydantic", "sklearn"):
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as exc:  # report, do not fail: the point is to learn what is there
            found[name] = f"missing ({type(exc).__name__})"
    return {"python": platform.python_version(), "packages": found}


def train(mixed: bool, batch: int, x, y, xv, yv, epochs: int) -> dict:
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, float32_copy, train_dnn
    from ml_expert.tools.training.hardware import UtilisationSampler

    config = DNNConfig(
        hidden_units=[512, 256], batch_size=batch, max_epochs=epochs, patience=epochs, mixed_precision=mixed
    )
    model = build_dnn(x.shape[1], "classification", 2, config, seed=0)
    with tempfile.TemporaryDirectory() as tmp, UtilisationSampler(enabled=True, interval=0.5) as sampler:
        result = train_dnn(model, x, y, xv, yv, config, Path(tmp), task="classification")
    served = float32_copy(model, x.shape[1], "classification", 2, config, 0)
    import numpy as np

    diff = float(
        np.abs(
            np.asarray(model.predict_on_batch(xv[:4096])) - np.asarray(served.predict_on_batch(xv[:4096]))
        ).max()
    )
    return {
        "mixed_precision": mixed,
        "batch_size": batch,
        "epochs": result.epochs_trained,
        "train_seconds": result.train_seconds,
        "seconds_per_epoch": round(result.train_seconds / max(result.epochs_trained, 1), 3),
        "final_val_accuracy": result.history.get("val_accuracy", [None])[-1],
        "grad_norm_per_epoch": result.history.get("grad_norm"),
        "float32_copy_max_abs_diff": diff,
        "gpu_utilisation": sampler.summary(),
    }


def main() -> None:
    report = {"probe": probe(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import numpy as np

        from ml_expert.tools.training.hardware import hardware_check

        report["hardware"] = hardware_check()
        rng = np.random.default_rng(0)
        n, f = int(os.environ.get("GPU_CHECK_ROWS", "400000")), 20
        x = rng.normal(size=(n, f)).astype("float32")
        w = rng.normal(size=f)
        y = ((x @ w + 0.5 * np.sin(x[:, 0] * 3)) > 0).astype("float32")
        hold = n // 8
        xv, yv = x[-hold:], y[-hold:]
        x, y = x[:-hold], y[:-hold]
        report["runs"] = [train(False, 512, x, y, xv, yv, 4), train(True, 2048, x, y, xv, yv, 4)]
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    text = json.dumps(report, indent=2)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
