"""The execution plan (steps per call, XLA, batch, learning rate, data placement) and what it may
change: speed, never a CPU result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_expert.tools.selection.budget import dense_flops
from ml_expert.tools.training.hardware import parse_smi_line, percentile
from ml_expert.tools.training.throughput import (
    GPU_MAX_BATCH,
    MAX_LR_FACTOR,
    MIN_STEPS_PER_EPOCH,
    plan_execution,
)

SMALL_NET = dense_flops(30, [128, 64], 2)


def _plan(**overrides):
    given = dict(
        backend="tensorflow",
        gpu=False,
        rows=400,
        data_bytes=400 * 30 * 4,
        forward_flops=SMALL_NET,
        batch_size=32,
        learning_rate=1e-3,
    )
    return plan_execution(**{**given, **overrides})


def test_cpu_plan_changes_only_the_steps_per_call() -> None:
    plan = _plan()
    # A small network's step is far below the host's call cost: one call runs the whole epoch.
    assert plan.steps_per_execution == -(-400 // 32)
    assert (plan.batch_size, plan.learning_rate, plan.jit_compile, plan.data_on_device) == (
        32,
        1e-3,
        "auto",
        False,
    )
    # A heavy network (a step far above the host's call cost) gets one step per call.
    assert _plan(forward_flops=1e9).steps_per_execution == 1
    assert "steps_per_execution = clamp" in plan.rules[0]


def test_gpu_plan_grows_the_batch_within_memory_and_steps_and_scales_the_learning_rate() -> None:
    rows = 1_000_000
    plan = _plan(gpu=True, backend="jax", rows=rows, data_bytes=rows * 80, free_gpu_memory_mb=80_000)
    assert plan.batch_size == GPU_MAX_BATCH and rows // plan.batch_size >= MIN_STEPS_PER_EPOCH
    assert plan.learning_rate == pytest.approx(1e-3 * MAX_LR_FACTOR)  # sqrt(512) capped at 8
    assert plan.jit_compile is True and plan.data_on_device
    # Few rows: the batch keeps at least MIN_STEPS_PER_EPOCH steps an epoch (2,000 / 16 -> 64).
    few = _plan(gpu=True, backend="jax", rows=2000, free_gpu_memory_mb=80_000)
    assert few.batch_size == 64 and few.learning_rate == pytest.approx(1e-3 * np.sqrt(2))
    # A big model on a small memory: the memory share bounds the batch.
    tight = _plan(gpu=True, backend="torch", rows=rows, forward_flops=2e8, free_gpu_memory_mb=4_000)
    assert (tight.batch_size, tight.learning_rate) == (32, 1e-3)  # never below the CPU batch
    assert tight.jit_compile is False
    # Class weights need host arrays; TensorFlow streams through tf.data.
    assert not _plan(gpu=True, backend="jax", free_gpu_memory_mb=80_000, class_weighted=True).data_on_device
    assert not _plan(gpu=True, backend="tensorflow", free_gpu_memory_mb=80_000).data_on_device


def test_gpu_batch_is_sized_from_the_built_models_activations() -> None:
    """A CNN's FLOPs per row overstate its memory by kernel x channels: sized from the built model's
    own activations, an MNIST-sized CNN gets a batch the GPU can fill (the FLOPs bound gave 256)."""
    from ml_expert.tools.selection.budget import cnn_flops
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn
    from ml_expert.tools.training.throughput import BYTES_PER_ACTIVATION, activation_elements

    config = DNNConfig(architecture="cnn", image_shape=[28, 28, 1], hidden_units=[64])
    model = build_dnn(784, "classification", 10, config, seed=0)
    elements = activation_elements(model)
    # Every layer's output for one row: at least the input and the first 28 x 28 x 32 convolution.
    assert elements >= 784 + 28 * 28 * config.conv_filters[0]
    flops = cnn_flops([28, 28, 1], config.conv_filters, [64], 10)
    given = dict(gpu=True, backend="jax", rows=52_500, forward_flops=flops, free_gpu_memory_mb=35_000)
    by_flops = _plan(**given)
    by_activations = _plan(**given, activations=elements)
    assert by_activations.batch_size > by_flops.batch_size
    assert f"{BYTES_PER_ACTIVATION:g} B x {elements} activations a row" in by_activations.rules[0]
    # The step bound still holds: 52,500 rows keep at least MIN_STEPS_PER_EPOCH steps.
    assert 52_500 // by_activations.batch_size >= MIN_STEPS_PER_EPOCH


def test_text_embedding_stays_float32_under_mixed_precision() -> None:
    """The embedding's gradient is a scatter-add: kept in float32 under mixed precision."""
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    config = DNNConfig(architecture="text", sequence_length=12, vocabulary_size=40, mixed_precision=True)
    model = build_dnn(12, "classification", 2, config, seed=0)
    embedding = model.get_layer("embedding")
    assert embedding.compute_dtype == "float32" and embedding.variable_dtype == "float32"
    conv = next(layer for layer in model.layers if layer.__class__.__name__ == "Conv1D")
    assert conv.compute_dtype == "float16"


def _breast_cancer(datasets: Path):
    frame = pd.read_csv(datasets / "breast_cancer.csv")
    x = frame.drop(columns="target").to_numpy("float32")
    x = (x - x.mean(0)) / x.std(0)
    y = frame["target"].to_numpy("float32")
    return x[:400], y[:400], x[400:], y[400:]


def _train(tmp_path: Path, data, name: str, **config):
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    x, y, xv, yv = data
    cfg = DNNConfig(hidden_units=[32], max_epochs=4, patience=4, **config)
    model = build_dnn(x.shape[1], "classification", 2, cfg, seed=3)
    result = train_dnn(model, x, y, xv, yv, cfg, tmp_path / name, task="classification")
    return model, result


def test_steps_per_call_leave_cpu_results_unchanged(datasets: Path, tmp_path: Path) -> None:
    data = _breast_cancer(datasets)
    plan = _plan(rows=len(data[0]), forward_flops=dense_flops(30, [32], 2))
    assert plan.steps_per_execution > 1
    one, first = _train(tmp_path, data, "one")
    many, second = _train(tmp_path, data, "many", steps_per_execution=plan.steps_per_execution)
    assert second.steps_per_execution == plan.steps_per_execution
    for a, b in zip(one.get_weights(), many.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.history["val_loss"], second.history["val_loss"], rtol=1e-5)


def test_a_setting_the_device_refuses_is_dropped_and_recorded(datasets: Path, tmp_path: Path) -> None:
    """XLA cannot compile a step that calls back into Python: the run falls back and says so."""
    import keras
    import tensorflow as tf

    from ml_expert.tools.training.dnn import DNNConfig, compile_model, train_dnn

    @keras.saving.register_keras_serializable(package="ml_expert_tests")
    class HostIdentity(keras.layers.Layer):
        def call(self, inputs):
            out = tf.numpy_function(lambda a: a, [inputs], tf.float32)
            return tf.ensure_shape(out, inputs.shape)

    x, y, xv, yv = _breast_cancer(datasets)
    inputs = keras.Input(shape=(x.shape[1],))
    outputs = keras.layers.Dense(2, activation="softmax")(HostIdentity()(inputs))
    model = keras.Model(inputs, outputs)
    config = DNNConfig(max_epochs=2, patience=2, jit_compile=True)
    compile_model(model, "classification", config)
    result = train_dnn(model, x, y, xv, yv, config, tmp_path / "xla", task="classification")
    assert [f["dropped"] for f in result.execution_fallbacks] == ["jit_compile"]
    assert result.epochs_trained == 2


def test_utilisation_samples_parse_and_summarise() -> None:
    assert parse_smi_line("87, 10240") == {"utilisation_pct": 87.0, "memory_used_mb": 10240.0}
    values = [5.0, 90.0, 93.0, 97.0, 99.0, 12.0, 95.0]
    for q in (10, 50, 90):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
