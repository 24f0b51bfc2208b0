"""A Keras 3 dense network for tabular data, trained through callbacks only.

Backend-neutral (keras.ops, no tf.*), so KERAS_BACKEND=torch or jax trains the same model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel


class DNNConfig(BaseModel):
    hidden_units: list[int] = [128, 64]
    dropout: float = 0.15
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 20
    l2: float = 1e-4
    class_weight: dict[int, float] | None = None
    time_limit_seconds: float | None = None


class TrainResult(BaseModel):
    epochs_trained: int
    best_epoch: int
    best_val_loss: float
    stopped_reason: str
    train_seconds: float
    params: int
    history: dict[str, list[float]]
    checkpoint: str
    summary: str


def build_dnn(n_features: int, task: str, n_outputs: int, config: DNNConfig, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=(n_features,), name="features")
    x = inputs
    for units in config.hidden_units:
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg)(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, seed=seed)(x)
    if task == "classification":
        outputs = keras.layers.Dense(n_outputs, activation="softmax", name="probabilities")(x)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        outputs = keras.layers.Dense(1, name="prediction")(x)
        loss, metrics = "mse", ["mae"]
    model = keras.Model(inputs, outputs, name="tabular_dnn")
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def _callbacks(config: DNNConfig, checkpoint: Path, backup_dir: Path, on_epoch: Callable | None):
    import keras

    class EpochReport(keras.callbacks.Callback):
        """Forwards each epoch's figures (and the learning rate) to the caller's progress sink."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            if on_epoch is not None:
                on_epoch(epoch + 1, config.max_epochs, {k: float(v) for k, v in logs.items()})

    class TimeLimit(keras.callbacks.Callback):
        """Stops training when the time left in the run's budget is spent."""

        def __init__(self, seconds: float | None) -> None:
            super().__init__()
            self.seconds = seconds
            self.hit = False

        def on_train_begin(self, logs=None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if self.seconds is not None and time.perf_counter() - self.started > self.seconds:
                self.hit = True
                self.model.stop_training = True

    early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    time_limit = TimeLimit(config.time_limit_seconds)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        EpochReport(),
        early,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(2, config.patience // 3), min_lr=1e-6
        ),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        time_limit,
    ]
    return callbacks, early, time_limit


def train_dnn(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: DNNConfig,
    out_dir: Path,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "best.keras"
    callbacks, early, time_limit = _callbacks(config, checkpoint, out_dir / "backup", on_epoch)
    started = time.perf_counter()
    fit = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        class_weight=config.class_weight,
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
    )
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    losses = history.get("val_loss", [])
    epochs = len(history.get("loss", []))
    finite = [v for v in losses if math.isfinite(v)]
    best_val = min(finite) if finite else float("nan")
    best_epoch = losses.index(best_val) + 1 if finite else 0
    if any(not math.isfinite(v) for v in history.get("loss", [])):
        reason = "loss became NaN or infinite (TerminateOnNaN)"
    elif early.stopped_epoch:
        reason = f"early stopping: no val_loss improvement for {config.patience} epochs"
    elif time_limit.hit:
        reason = f"time budget of {config.time_limit_seconds:.0f} s spent"
    else:
        reason = f"reached max_epochs={config.max_epochs}"
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return TrainResult(
        epochs_trained=epochs,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        stopped_reason=reason,
        train_seconds=round(seconds, 3),
        params=int(model.count_params()),
        history=history,
        checkpoint=str(checkpoint),
        summary="\n".join(lines),
    )


def save_history(history: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(history, indent=2))
