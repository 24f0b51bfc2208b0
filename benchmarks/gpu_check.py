"""GPU check for the training tools, run on a lent GPU machine (no TensorFlow there).

Trains the same Keras network the pipeline builds, with KERAS_BACKEND=torch (or jax), on the
GPU with mixed precision and a bigger batch, samples nvidia-smi utilisation while it trains, and
checks the float32 copy that gets exported predicts like the mixed-precision model. Writes one
JSON object to $OUT/gpu_check.json (or stdout).

    KERAS_BACKEND=torch python benchmarks/gpu_check.py
    KERAS_BACKEND=jax GPU_CHECK_PART=text python benchmarks/gpu_check.py

`GPU_CHECK_PART=throughput` measures issue #16's targets: for the tabular network on 1M rows, the
image CNN on MNIST-sized images and the text network, the mean and p10 GPU utilisation and the
samples per second of (a) a bare `model.fit` written the usual way with the same model and batch,
(b) ml-expert's training (`train_dnn` with its callbacks) at that batch, (c) ml-expert at the
settings it chooses (tools/training/throughput.py), (d) today's settings before #16 (batch 4 x 32,
one step per call) and (e) float32, one step per call at the chosen batch, for the accuracy check.
Writes $OUT/gpu_check_throughput_<backend>.json; `GPU_CHECK_ROWS` / `GPU_CHECK_EPOCHS` shrink it.

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
        "gpu_utilisation": _summary(sampler),
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
        "gpu_utilisation": _summary(sampler),
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

        report["hardware"] = hardware_check().model_dump()
        if part == "text":
            text_part(report)
        elif part == "throughput":
            throughput_part(report)
        else:
            dense_part(report)
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    backend = os.environ["KERAS_BACKEND"]
    name = {
        "text": f"gpu_check_text_{backend}.json",
        "throughput": f"gpu_check_throughput_{backend}.json",
    }.get(part, "gpu_check.json")
    if part == "text" and os.environ.get("GPU_CHECK_READERS", "conv") != "conv":
        name = f"gpu_check_readers_{backend}.json"
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


def _tabular(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 40)).astype("float32")
    w = rng.normal(size=40)
    y = ((x @ w + 0.5 * np.sin(x[:, 0] * 3) + rng.normal(0, 0.5, n)) > 0).astype("float32")
    hold = n // 8
    return x[:-hold], y[:-hold], x[-hold:], y[-hold:]


def _images(n: int, seed: int = 0):
    """MNIST-sized (28 x 28 x 1) images: the bundled 8 x 8 digits, scaled up, shifted and noised."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "digits.csv")
    digits = frame.drop(columns="target").to_numpy("float32").reshape(-1, 8, 8) / 16.0
    labels = frame["target"].to_numpy("float32")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits), n)
    big = np.kron(digits[pick], np.ones((3, 3), dtype="float32"))  # 24 x 24
    out = np.zeros((n, 28, 28), dtype="float32")
    dx, dy = rng.integers(0, 5, n), rng.integers(0, 5, n)
    for i in range(n):
        out[i, dy[i] : dy[i] + 24, dx[i] : dx[i] + 24] = big[i]
    out += rng.normal(0, 0.1, out.shape).astype("float32")
    x, y = out.reshape(n, -1), labels[pick]
    hold = n // 8
    return x[:-hold], y[:-hold], x[-hold:], y[-hold:]


def _measure(kind: str, model_config: dict, data, n_classes: int, epochs: int, settings: dict) -> dict:
    """One training of the same model: bare `model.fit`, or ml-expert's `train_dnn` with `settings`."""
    import keras
    import numpy as np

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, compile_model, train_dnn
    from ml_expert.tools.training.hardware import UtilisationSampler, percentile

    x, y, xv, yv = data
    config = DNNConfig(**model_config, max_epochs=epochs, patience=epochs + 1, **settings)
    model = build_dnn(x.shape[1], "classification", n_classes, config, seed=0)
    epoch_ends: list[float] = []  # seconds since the sampler started, at the end of each epoch
    with UtilisationSampler(enabled=True, interval=0.25) as sampler:
        started = time.perf_counter()

        def mark(*_: object) -> None:
            epoch_ends.append(time.perf_counter() - started)

        if kind == "bare":
            # What a user writes by hand: compile with defaults, fit the arrays, nothing else (the
            # callback only reads the clock at each epoch's end).
            compile_model(model, "classification", DNNConfig(**model_config, batch_size=config.batch_size))
            model.fit(
                x,
                y,
                batch_size=config.batch_size,
                epochs=epochs,
                validation_data=(xv, yv),
                verbose=0,
                callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=mark)],
            )
        else:
            with tempfile.TemporaryDirectory() as tmp:
                train_dnn(model, x, y, xv, yv, config, Path(tmp), on_epoch=mark, task="classification")
        seconds = time.perf_counter() - started
    probabilities = np.asarray(model.predict(xv, batch_size=8192, verbose=0))
    keras.backend.clear_session()
    # Steady state: the epochs after the first, whose time holds no XLA compilation or GPU autotuning
    # (a one-off cost per process and shape, in every variant including the bare script).
    steady = epoch_ends[-1] - epoch_ends[0] if len(epoch_ends) > 1 else None
    window = [s for s in sampler.samples if steady and epoch_ends[0] <= s["t"] <= epoch_ends[-1]]
    utils = [s["utilisation_pct"] for s in window]
    return {
        "kind": kind,
        "settings": settings,
        "batch_size": config.batch_size,
        "seconds": round(seconds, 3),
        "samples_per_second": round(len(x) * epochs / seconds, 1),
        "epoch_ends": [round(t, 3) for t in epoch_ends],
        "steady_samples_per_second": round(len(x) * (len(epoch_ends) - 1) / steady, 1) if steady else None,
        "steady_utilisation": {
            "samples": len(utils),
            "mean_pct": round(sum(utils) / len(utils), 1),
            "p10_pct": round(percentile(utils, 10), 1),
        }
        if utils
        else None,
        "val_accuracy": float((probabilities.argmax(1) == yv).mean()),
        "gpu_utilisation": _summary(sampler),
    }


def throughput_part(report: dict) -> None:
    import keras

    from ml_expert.tools.selection.budget import cnn_flops, dense_flops, text_flops
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn
    from ml_expert.tools.training.hardware import free_gpu_memory_mb, hardware_check
    from ml_expert.tools.training.throughput import activation_elements, plan_execution

    rows = int(os.environ.get("GPU_CHECK_ROWS", "1000000"))
    epochs = int(os.environ.get("GPU_CHECK_EPOCHS", "4"))
    hardware = hardware_check()
    gpu = bool(hardware.gpus)
    x, y, xv, yv, vocabulary, length = _reviews(min(rows, 200_000), 0)
    cases = [
        ("tabular", {"hidden_units": [128, 64]}, _tabular(rows), 2, dense_flops(40, [128, 64], 2)),
        (
            "image",
            {"architecture": "cnn", "image_shape": [28, 28, 1], "hidden_units": [64]},
            _images(min(rows, 60_000)),
            10,
            cnn_flops([28, 28, 1], [32, 64], [64], 10),
        ),
        (
            "text",
            {"architecture": "text", "sequence_length": length, "vocabulary_size": vocabulary},
            (x, y, xv, yv),
            2,
            text_flops(length, 0, 32, [128, 64], 2),
        ),
    ]
    report["runs"], report["checks"] = [], {}
    for name, model_config, data, n_classes, flops in cases:
        built = build_dnn(data[0].shape[1], "classification", n_classes, DNNConfig(**model_config), seed=0)
        activations = activation_elements(built)
        keras.backend.clear_session()
        plan = plan_execution(
            backend=hardware.backend,
            gpu=gpu,
            rows=len(data[0]),
            data_bytes=int(data[0].nbytes + data[2].nbytes),
            forward_flops=flops,
            batch_size=32,
            learning_rate=1e-3,
            free_gpu_memory_mb=free_gpu_memory_mb() if gpu else None,
            activations=activations,
        )
        chosen = {
            "batch_size": plan.batch_size,
            "learning_rate": plan.learning_rate,
            "steps_per_execution": plan.steps_per_execution,
            "jit_compile": plan.jit_compile,
            "data_on_device": plan.data_on_device,
            "mixed_precision": gpu,
        }
        same_batch = {**chosen, "learning_rate": 1e-3}
        runs = {
            "bare": _measure("bare", model_config, data, n_classes, epochs, {"batch_size": plan.batch_size}),
            "ml_expert_same_batch": _measure("ml-expert", model_config, data, n_classes, epochs, same_batch),
            "ml_expert_chosen": _measure("ml-expert", model_config, data, n_classes, epochs, chosen),
            "before_16": _measure(
                "ml-expert",
                model_config,
                data,
                n_classes,
                epochs,
                {"batch_size": 128, "mixed_precision": gpu},
            ),
            "float32_single_step": _measure(
                "ml-expert", model_config, data, n_classes, epochs, {"batch_size": plan.batch_size}
            ),
        }
        util = (runs["ml_expert_chosen"]["steady_utilisation"] or {}).get("mean_pct")
        speed = {k: v["steady_samples_per_second"] or v["samples_per_second"] for k, v in runs.items()}
        whole = {k: v["samples_per_second"] for k, v in runs.items()}
        checks = {
            "throughput_vs_bare_same_batch": round(speed["ml_expert_same_batch"] / speed["bare"], 3),
            "throughput_vs_before_16": round(speed["ml_expert_chosen"] / speed["before_16"], 3),
            "whole_run_vs_bare_same_batch": round(whole["ml_expert_same_batch"] / whole["bare"], 3),
            "whole_run_vs_before_16": round(whole["ml_expert_chosen"] / whole["before_16"], 3),
            "whole_run_mean_utilisation_pct": (runs["ml_expert_chosen"]["gpu_utilisation"] or {}).get(
                "mean_pct"
            ),
            "val_accuracy_gap_to_float32_single_step": round(
                runs["float32_single_step"]["val_accuracy"] - runs["ml_expert_chosen"]["val_accuracy"], 4
            ),
            "mean_utilisation_pct": util,
        }
        checks["met"] = {
            "throughput >= 0.95 x bare": checks["throughput_vs_bare_same_batch"] >= 0.95,
            "throughput >= 2 x before #16": checks["throughput_vs_before_16"] >= 2.0,
            "accuracy within 0.005": checks["val_accuracy_gap_to_float32_single_step"] <= 0.005,
            **({"utilisation >= 80 %": util is not None and util >= 80} if name != "text" else {}),
        }
        report["runs"].append({"model": name, "rows": len(data[0]), "plan": plan.model_dump(), **runs})
        report["checks"][name] = checks
        # Written after each model, so a run stopped at the lent machine's time limit keeps what it measured.
        _write(report, f"gpu_check_throughput_{os.environ['KERAS_BACKEND']}.json", echo=False)


def _summary(sampler) -> dict | None:
    """The sampler's GPU utilisation as the report's JSON (None: no samples)."""
    summary = sampler.summary()
    return summary.model_dump() if summary is not None else None


def _write(report: dict, name: str, echo: bool = True) -> int:
    text = json.dumps(report, indent=2)
    out = os.environ.get("OUT")
    if out:
        Path(out, name).write_text(text)
    if echo:
        print(text)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    main()
