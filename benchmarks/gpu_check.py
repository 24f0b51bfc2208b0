"""GPU check for the training tools, run on a lent GPU machine (no TensorFlow there).

Trains the same Keras network the pipeline builds, with KERAS_BACKEND=torch (or jax), on the
GPU with mixed precision and a bigger batch, samples nvidia-smi utilisation while it trains, and
checks the float32 copy that gets exported predicts like the mixed-precision model. Writes one
JSON object to $OUT/gpu_check.json (or stdout).

    KERAS_BACKEND=torch python benchmarks/gpu_check.py
    KERAS_BACKEND=jax GPU_CHECK_PART=text python benchmarks/gpu_check.py

`GPU_CHECK_PART=text` checks the text model (word ids from the project's own tokenizer ->
Embedding -> Conv1D) and the 1-D sequence CNN instead, on data where a bag of words or a dense
view cannot decide the label, and writes $OUT/gpu_check_text_<backend>.json.
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


def _reviews(n: int, seed: int):
    """Word ids of two-clause reviews, one clause negated: only word order says the label."""
    import numpy as np

    from ml_expert.tools.data.text import fit_vocabulary, sequence_length, token_ids, vocabulary_index

    rng = np.random.default_rng(seed)
    nouns = ["food", "service", "room", "staff", "view", "price", "music", "coffee"]
    texts, labels = [], []
    for _ in range(n):
        a1, a2 = rng.choice(["good", "bad"], 2)
        first_negated = bool(rng.integers(0, 2))
        n1, n2 = rng.choice(nouns, 2, replace=False)
        neg1, neg2 = ("not " if first_negated else ""), ("" if first_negated else "not ")
        texts.append(f"The {n1} was {neg1}{a1} and the {n2} was {neg2}{a2}.")
        labels.append(int((a1 == "good") != first_negated))
    split = n * 7 // 8
    vocabulary = fit_vocabulary(texts[:split], max_words=2000)
    length = sequence_length(texts[:split])
    index = vocabulary_index(vocabulary)
    x = np.asarray([token_ids(t, index, length) for t in texts], dtype="float32")
    y = np.asarray(labels, dtype="float32")
    return x[:split], y[:split], x[split:], y[split:], len(vocabulary), length


def _waves(n: int, seed: int, steps: int = 64):
    """Sine, square and sawtooth waves with random phase, period, amplitude and noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    cycle = (np.arange(steps)[None, :] / rng.uniform(8, 16, (n, 1)) + rng.uniform(0, 1, (n, 1))) % 1.0
    waves = np.stack([np.sin(2 * np.pi * cycle), np.sign(np.sin(2 * np.pi * cycle)), 2 * cycle - 1])
    x = waves[kind, np.arange(n)] * rng.uniform(0.5, 2.0, (n, 1)) + rng.normal(0, 0.3, (n, steps))
    split = n * 7 // 8
    x, y = x.astype("float32"), kind.astype("float32")
    return x[:split], y[:split], x[split:], y[split:]


def fit_one(architecture: str, mixed: bool, data, n_classes: int, **extra) -> dict:
    import numpy as np

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, float32_copy, train_dnn
    from ml_expert.tools.training.hardware import UtilisationSampler

    x, y, xv, yv = data
    config = DNNConfig(
        architecture=architecture, batch_size=256, max_epochs=25, patience=5, mixed_precision=mixed, **extra
    )
    model = build_dnn(x.shape[1], "classification", n_classes, config, seed=0)
    with tempfile.TemporaryDirectory() as tmp, UtilisationSampler(enabled=True, interval=0.5) as sampler:
        result = train_dnn(model, x, y, xv, yv, config, Path(tmp), task="classification")
    served = float32_copy(model, x.shape[1], "classification", n_classes, config, 0)
    probabilities = np.asarray(served.predict_on_batch(xv))
    return {
        "architecture": architecture
        + ("" if config.sequence_layer == "conv" else f"_{config.sequence_layer}"),
        "mixed_precision": mixed,
        "rows": int(len(x)),
        "epochs": result.epochs_trained,
        "stopped_reason": result.stopped_reason,
        "train_seconds": result.train_seconds,
        "val_accuracy_float32_copy": float((probabilities.argmax(1) == yv).mean()),
        "float32_copy_max_abs_diff": float(
            np.abs(np.asarray(model.predict_on_batch(xv)) - probabilities).max()
        ),
        "gpu_utilisation": sampler.summary(),
    }


def text_part(report: dict) -> None:
    rows = int(os.environ.get("GPU_CHECK_TEXT_ROWS", "8000"))
    x, y, xv, yv, vocabulary, length = _reviews(rows, 0)
    text = {"sequence_length": length, "vocabulary_size": vocabulary}
    waves = _waves(rows, 1)
    # GPU_CHECK_READERS=conv,lstm,transformer: the same checks for each reader of the steps
    report["runs"] = []
    for layer in os.environ.get("GPU_CHECK_READERS", "conv").split(","):
        report["runs"] += [
            fit_one("text", mixed, (x, y, xv, yv), 2, sequence_layer=layer, **text) for mixed in (False, True)
        ] + [fit_one("sequence", mixed, waves, 3, sequence_layer=layer) for mixed in (False, True)]
    # Both tasks are out of reach of a bag of words / a per-step dense view (tests/test_text_sequence.py):
    # the check fails unless the network learned order, and the exported float32 copy agrees.
    report["checks"] = {
        f"{r['architecture']}{'_mixed' if r['mixed_precision'] else ''}": (
            r["val_accuracy_float32_copy"] >= 0.9 and r["float32_copy_max_abs_diff"] < 0.02
        )
        for r in report["runs"]
    }
    if not all(report["checks"].values()):
        report["error"] = f"a check failed: {report['checks']}"


def main() -> None:
    part = os.environ.get("GPU_CHECK_PART", "dense")
    report = {
        "probe": probe(),
        "part": part,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        from ml_expert.tools.training.hardware import hardware_check

        report["hardware"] = hardware_check()
        if part == "text":
            text_part(report)
        else:
            dense_part(report)
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    name = f"gpu_check_text_{os.environ['KERAS_BACKEND']}.json" if part == "text" else "gpu_check.json"
    if part == "text" and os.environ.get("GPU_CHECK_READERS", "conv") != "conv":
        name = f"gpu_check_readers_{os.environ['KERAS_BACKEND']}.json"
    raise SystemExit(_write(report, name))


def dense_part(report: dict) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    n, f = int(os.environ.get("GPU_CHECK_ROWS", "400000")), 20
    x = rng.normal(size=(n, f)).astype("float32")
    w = rng.normal(size=f)
    y = ((x @ w + 0.5 * np.sin(x[:, 0] * 3)) > 0).astype("float32")
    hold = n // 8
    xv, yv = x[-hold:], y[-hold:]
    x, y = x[:-hold], y[:-hold]
    report["runs"] = [train(False, 512, x, y, xv, yv, 4), train(True, 2048, x, y, xv, yv, 4)]


def _write(report: dict, name: str) -> int:
    text = json.dumps(report, indent=2)
    out = os.environ.get("OUT")
    if out:
        Path(out, name).write_text(text)
    print(text)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    main()
