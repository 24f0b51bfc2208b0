"""Keras 3 networks (dense for tables, convolutional for images), trained through callbacks only.

Backend-neutral (keras.ops, no tf.*), so KERAS_BACKEND=torch or jax trains the same model.
Every model takes the flat, preprocessed feature row [N, F]: an image network reshapes it itself,
so the export path and the deployment package are the same for every architecture.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from ml_expert.tools.training.checkpoints import CheckpointKeeper
from ml_expert.tools.training.stopping import GaveUp, GiveUpRule, cannot_win

# A batch whose running loss grows past this multiple of the loss at the start has exploded.
EXPLOSION_FACTOR = 1e3
OOM_NAMES = ("ResourceExhaustedError", "OutOfMemoryError", "MemoryError")
# The gradient norm in the history is measured on this many training rows (a fixed sample).
GRAD_NORM_ROWS = 256


class DNNConfig(BaseModel):
    # "dense", "cnn" (images), "text" (word ids at the end of the features) or "sequence" (1-D signal)
    architecture: str = "dense"
    image_shape: list[int] | None = None  # [h, w, c] for "cnn"
    # what reads the steps of "text" and "sequence": a 1-D convolution, an LSTM or a Transformer encoder
    sequence_layer: Literal["conv", "lstm", "transformer"] = "conv"
    sequence_length: int | None = None  # word-id columns at the end of the features, for "text"
    vocabulary_size: int | None = None  # words in the vocabulary (ids 2..size+1; 1 unknown, 0 padding)
    hidden_units: list[int] = [128, 64]
    conv_filters: list[int] = [32, 64]
    dropout: float = 0.15
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    batch_size: int = 32
    gradient_accumulation_steps: int | None = None
    max_epochs: int = 200
    patience: int = 20
    l2: float = 1e-4
    class_weight: dict[int, float] | None = None
    # Wall-clock safety stop only: the plan is the epoch count above; this fires as "cap hit".
    time_limit_seconds: float | None = None
    keep_last: int = 3
    # On a GPU: float16 compute with float32 weights; the served copy is rebuilt in float32.
    mixed_precision: bool = False
    # Throughput (tools/training/throughput.py): steps per host call, XLA, data placed on the device.
    steps_per_execution: int = 1
    jit_compile: bool | Literal["auto"] = "auto"
    data_on_device: bool = False


class TrainResult(BaseModel):
    epochs_trained: int
    initial_epoch: int = 0
    best_epoch: int
    best_val_loss: float
    stopped_reason: str
    diverged: bool = False
    cap_hit: bool = False
    gave_up: GaveUp | None = None  # stopped because it cannot reach the best candidate (stopping.py)
    train_seconds: float
    params: int
    history: dict[str, list[float]]
    checkpoint: str
    checkpoints: list[dict[str, Any]] = []
    oom_retries: list[dict[str, Any]] = []
    batch_size: int
    gradient_accumulation_steps: int | None = None
    steps_per_execution: int = 1
    # A setting that failed on this device and was dropped (XLA, data on the device), with the error.
    execution_fallbacks: list[dict[str, Any]] = []
    summary: str


def is_out_of_memory(exc: BaseException) -> bool:
    """Backend-neutral: TF's ResourceExhaustedError, torch's OutOfMemoryError, Python's MemoryError."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & set(OOM_NAMES)) or "out of memory" in str(exc).lower()


def build_dnn(n_features: int, task: str, n_outputs: int, config: DNNConfig, seed: int):
    """The network for `config.architecture`, compiled; same seed → same initial weights."""
    import keras

    keras.utils.set_random_seed(seed)
    previous = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        return _build(keras, n_features, task, n_outputs, config, seed)
    finally:
        keras.config.set_dtype_policy(previous)


def _build(keras, n_features: int, task: str, n_outputs: int, config: DNNConfig, seed: int):
    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=(n_features,), name="features")
    x = inputs
    if config.architecture == "cnn":
        if not config.image_shape or math.prod(config.image_shape) != n_features:
            raise ValueError(f"image_shape {config.image_shape} does not hold {n_features} features")
        x = keras.layers.Reshape(tuple(config.image_shape), name="to_image")(x)
        for i, filters in enumerate(config.conv_filters):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=reg)(x)
            # momentum 0.9 (not 0.99): the moving statistics settle within one short epoch
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            if min(x.shape[1], x.shape[2]) >= 4 and i < len(config.conv_filters) - 1:
                x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
    elif config.architecture == "text":
        x = _text_branch(keras, inputs, n_features, config, reg, seed)
    elif config.architecture == "sequence" and config.sequence_layer != "conv":
        from ml_expert.tools.training.sequence_models import sequence_branch

        x = keras.layers.Reshape((n_features, 1), name="to_sequence")(x)
        x = sequence_branch(config.sequence_layer, x, n_features, reg, config.dropout, seed, signal=True)
    elif config.architecture == "sequence":
        x = keras.layers.Reshape((n_features, 1), name="to_sequence")(x)
        for i, filters in enumerate(config.conv_filters):
            x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu", kernel_regularizer=reg)(x)
            if x.shape[1] >= 4 and i < len(config.conv_filters) - 1:
                x = keras.layers.MaxPooling1D(2)(x)
        x = keras.layers.GlobalAveragePooling1D(name="average_over_steps")(x)
    for units in config.hidden_units:
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg)(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, seed=seed)(x)
    if task == "classification":
        outputs = keras.layers.Dense(n_outputs, activation="softmax", name="probabilities", dtype="float32")(
            x
        )
    else:
        outputs = keras.layers.Dense(1, name="prediction", dtype="float32")(x)
    name = {"cnn": "image_cnn", "text": "text_cnn", "sequence": "sequence_cnn"}.get(
        config.architecture, "tabular_dnn"
    )
    if config.architecture in ("text", "sequence") and config.sequence_layer != "conv":
        name = f"{config.architecture}_{config.sequence_layer}"
    model = keras.Model(inputs, outputs, name=name)
    compile_model(model, task, config)
    return model


def _text_branch(keras, inputs, n_features: int, config: DNNConfig, reg, seed: int = 0):
    """Word ids (the last `sequence_length` features) -> Embedding -> Conv1D -> max over positions,
    joined with the other features. Built from stock layers only (Reshape, Cropping1D), so the one
    float input and every export path (.keras, .h5, SavedModel, TFLite, ONNX) stay as they are."""
    from ml_expert.tools.selection.budget import TEXT_EMBEDDING_DIM, TEXT_KERNEL

    length, vocabulary = config.sequence_length, config.vocabulary_size
    if not length or not vocabulary or length > n_features:
        raise ValueError(f"text model needs sequence_length <= {n_features} and a vocabulary size")
    other = n_features - length
    columns = keras.layers.Reshape((n_features, 1), name="as_columns")(inputs)
    ids = keras.layers.Cropping1D((other, 0), name="word_ids")(columns)
    ids = keras.layers.Reshape((length,), name="id_sequence")(ids)
    # float32 even under mixed precision: the embedding's gradient is a scatter-add of every word
    # of the batch into a few rows, and float16 scatter-adds on a GPU serialise on their atomics
    # (the text network ran 8x slower than in float32 at batch 8,192 on an H200, the GPU 82 % busy).
    x = keras.layers.Embedding(vocabulary + 2, TEXT_EMBEDDING_DIM, name="embedding", dtype="float32")(ids)
    if config.sequence_layer != "conv":
        from ml_expert.tools.training.sequence_models import sequence_branch

        x = sequence_branch(config.sequence_layer, x, length, reg, config.dropout, seed)
    else:
        x = keras.layers.Conv1D(
            config.conv_filters[0], TEXT_KERNEL, padding="same", activation="relu", kernel_regularizer=reg
        )(x)
        x = keras.layers.GlobalMaxPooling1D(name="max_over_positions")(x)
    if other:
        rest = keras.layers.Cropping1D((0, length), name="other_columns")(columns)
        rest = keras.layers.Flatten()(rest)
        x = keras.layers.Concatenate()([x, rest])
    return x


def float32_copy(model, n_features: int, task: str, n_outputs: int, config: DNNConfig, seed: int):
    """The same weights in a float32 network, so exports match on CPU (mixed precision is GPU-only)."""
    if not config.mixed_precision:
        return model
    clone = build_dnn(n_features, task, n_outputs, config.model_copy(update={"mixed_precision": False}), seed)
    clone.set_weights(model.get_weights())
    return clone


def standardise_target(y_train: np.ndarray, y_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Regression targets as z-scores of the training split: the network's loss and learning rate
    then mean the same on any target scale. Returns both splits, the mean and the std."""
    mean, std = float(y_train.mean()), float(y_train.std() or 1.0)
    return (y_train - mean) / std, (y_val - mean) / std, mean, std


TARGET_SCALE_LAYER = "target_scale"
"""The served regression network's last layer: z-score -> target units (with_target_scale)."""


def with_target_scale(model, mean: float, std: float, name: str | None = None):
    """The served model: the network's z-score output mapped back to the target's units."""
    import keras

    outputs = keras.layers.Rescaling(scale=std, offset=mean, name=TARGET_SCALE_LAYER)(model.output)
    return keras.Model(model.input, outputs, **({"name": name} if name else {}))


def target_scale(model) -> tuple[float, float] | None:
    """(mean, std) a served regression network maps its z-scores back with (its `target_scale`
    layer, saved with the weights); None for a network without one."""
    layer = next((x for x in model.layers if x.name == TARGET_SCALE_LAYER), None)
    if layer is None or model.layers[-1] is not layer:
        return None
    config = layer.get_config()
    scale, offset = config.get("scale"), config.get("offset")
    if not isinstance(scale, int | float) or not isinstance(offset, int | float) or not scale > 0:
        return None  # a per-output or non-positive scale is not one this project writes
    return float(offset), float(scale)


def without_target_scale(model):
    """The network under a served regression model's `target_scale` layer, its layers shared: what
    learns on the z-scores (with_target_scale wraps it again)."""
    import keras

    return keras.Model(model.input, model.layers[-1].input, name=f"{model.name}_z")


def compile_model(model, task: str, config: DNNConfig) -> None:
    """Adam with clipping (and gradient accumulation after an out-of-memory retry), several steps
    per call and XLA as the execution plan says."""
    import keras

    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate,
        clipnorm=config.clipnorm,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    if task == "classification":
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        loss, metrics = "mse", ["mae"]
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        steps_per_execution=config.steps_per_execution,
        jit_compile=config.jit_compile,
    )


def class_sample_weights(y: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray | None:
    """Per-row weights from the plan's class weights, mapped as Keras's `fit(class_weight=...)` maps
    them (the label rounded to an int; a class not in the dict weighs 1), for a loop that is not
    `fit` (the data-parallel workers). Multiplied into the per-row loss and averaged over the batch
    (Keras's "sum_over_batch_size"), they give the loss `fit` minimises."""
    if not class_weight:
        return None
    labels = np.round(np.asarray(y).reshape(len(y), -1)[:, 0]).astype("int64")
    return np.array([class_weight.get(int(k), 1.0) for k in labels], dtype="float32")


@functools.cache
def _safety_stop_class() -> type:
    import keras

    class SafetyStop(keras.callbacks.Callback):
        """Wall-clock cap: the plan is counted in epochs; this only fires when the machine is too slow.

        `spent` is training time already used before this start (a data-parallel group restarted from
        its checkpoint), so a restart does not buy a fresh budget."""

        def __init__(self, seconds: float | None, spent: float = 0.0) -> None:
            super().__init__()
            self.seconds = seconds
            self.spent = spent
            self.hit = False

        def on_train_begin(self, logs=None) -> None:
            self.started = time.perf_counter()

        def elapsed(self) -> float:
            return self.spent + time.perf_counter() - self.started

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if self.seconds is not None and self.elapsed() > self.seconds:
                self.hit = True
                self.model.stop_training = True

    return SafetyStop


def safety_stop(seconds: float | None, spent: float = 0.0) -> Any:
    """The wall-clock cap as a Keras callback: `fit` here, and the data-parallel workers' own loop
    (which calls its hooks itself), stop by the same rule."""
    return _safety_stop_class()(seconds, spent)


def cap_reason(seconds: float | None) -> str:
    """The stop reason a fired wall-clock cap records, the same on every path."""
    return f"wall-clock cap of {seconds or 0:.0f} s hit before the planned epochs"


class GiveUpWatch(BaseModel):
    """The give-up rule and the rows it scores the network on after each epoch (at most
    stopping.GIVE_UP_ROWS of the rows early stopping watches, in the user's metric)."""

    model_config = {"arbitrary_types_allowed": True}

    rule: GiveUpRule
    x: np.ndarray
    y: np.ndarray  # in the user's units: class indices, or the regression target unstandardised
    target_mean: float | None = None  # regression: the network predicts (y - mean) / std
    target_std: float | None = None


def _callbacks(
    config: DNNConfig,
    out_dir: Path,
    on_epoch: Callable | None,
    keeper: CheckpointKeeper,
    probe: tuple[np.ndarray, np.ndarray] | None = None,
    give_up: GiveUpWatch | None = None,
):
    import keras

    from ml_expert.tools.training.gradients import global_gradient_norm

    class EpochReport(keras.callbacks.Callback):
        """Adds the learning rate and the global gradient norm (on a fixed sample of training rows)
        to each epoch's logs, so the history and the curves show them, and forwards them on."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            if probe is not None:
                norm = global_gradient_norm(self.model, *probe)
                if norm is not None:
                    logs["grad_norm"] = norm
            if on_epoch is not None:
                on_epoch(epoch + 1, config.max_epochs, {k: float(v) for k, v in logs.items()})

    class DivergenceGuard(keras.callbacks.Callback):
        """Stops on a NaN/inf loss or one that explodes past EXPLOSION_FACTOR x the loss at the start.

        The start is measured on the fixed probe rows before the first step: with several steps per
        call the first logged loss is already a running mean, which may have exploded itself."""

        def __init__(self) -> None:
            super().__init__()
            self.first: float | None = None
            self.diverged = False

        def on_train_begin(self, logs=None) -> None:
            if probe is not None:
                start = _probe_loss(self.model, *probe)
                self.first = max(start, 1e-8) if math.isfinite(start) else None

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if self.first is None and math.isfinite(loss):
                self.first = max(loss, 1e-8)
            if not math.isfinite(loss) or (self.first is not None and loss > EXPLOSION_FACTOR * self.first):
                self.diverged = True
                self.model.stop_training = True

    class GiveUpCheck(keras.callbacks.Callback):
        """Scores the network on the watched rows after each epoch and stops it when it cannot reach
        the best candidate in its remaining epochs (stopping.cannot_win); off without a rule, and
        off for good when the metric cannot be computed on those rows."""

        def __init__(self) -> None:
            super().__init__()
            self.scores: list[float] = []
            self.verdict: GaveUp | None = None
            self.off = give_up is None

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if self.off or give_up is None:
                return
            from ml_expert.tools.scoring import score

            out = np.concatenate(
                [
                    np.asarray(self.model.predict_on_batch(give_up.x[i : i + 4096]), dtype=np.float64)
                    for i in range(0, len(give_up.x), 4096)
                ]
            )
            if give_up.target_std is not None:
                out = out.ravel() * give_up.target_std + (give_up.target_mean or 0.0)
            try:
                value = float(score(give_up.rule.metric, give_up.y, out))
            except Exception:  # e.g. ROC-AUC on rows of one class: the rule cannot judge
                self.off = True
                return
            self.scores.append(value if math.isfinite(value) else float("nan"))
            rule = give_up.rule.model_copy(update={"max_epochs": config.max_epochs})
            self.verdict = cannot_win(self.scores, rule, epoch=epoch + 1)
            if self.verdict is not None:
                self.model.stop_training = True

    every = max(1, config.max_epochs // 25)  # at most ~25 full saves: each costs a zip write
    best = keras.callbacks.ModelCheckpoint(str(keeper.best_path), monitor="val_loss", save_best_only=True)

    class KeepLast(keras.callbacks.Callback):
        """Saves the model every `every` epochs (and the last), keeps the last few, hashes each one.

        When the best checkpoint (earlier in the list) was written this epoch, its file is copied
        instead: Keras' save walks every variable in Python (90 ms an epoch for a small MLP)."""

        def __init__(self) -> None:
            super().__init__()
            self.best_seen = best.best

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            saved_best, self.best_seen = best.best != self.best_seen, best.best
            if (epoch + 1) % every == 0 or self.model.stop_training or epoch + 1 == config.max_epochs:
                keeper.save_last(self.model, epoch + 1, copy_of=keeper.best_path if saved_best else None)

    early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    guard = DivergenceGuard()
    safety = safety_stop(config.time_limit_seconds)
    check = GiveUpCheck()
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        guard,
        EpochReport(),
        check,  # before early stopping, which may restore the best weights when it stops
        early,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(2, config.patience // 3), min_lr=1e-6
        ),
        best,
        KeepLast(),
        # Appends each epoch's row, so a resumed run's history still starts at epoch 1.
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        # Two copies: a kill -9 in the middle of a write leaves the previous backup whole.
        keras.callbacks.BackupAndRestore(str(out_dir / "backup"), double_checkpoint=True),
        safety,
    ]
    return callbacks, early, guard, safety, check


def backup_epoch(out_dir: Path) -> int:
    """The epoch BackupAndRestore will resume from (0 when there is no backup)."""
    meta = out_dir / "backup" / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def train_dnn(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: DNNConfig,
    out_dir: Path,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    task: str | None = None,
    give_up: GiveUpWatch | None = None,
) -> TrainResult:
    """Fit with callbacks; on out-of-memory halve the batch and accumulate gradients, then retry; a
    setting the device refuses (XLA, data on the device) is dropped once, recorded, and retried.

    `give_up`: stop when the network cannot reach the best candidate (stopping.cannot_win)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    task = task or ("classification" if model.loss == "sparse_categorical_crossentropy" else "regression")
    keeper = CheckpointKeeper(out_dir, keep_last=config.keep_last)
    initial_weights = model.get_weights()
    oom_retries: list[dict[str, Any]] = []
    fallbacks: list[dict[str, Any]] = []
    started = time.perf_counter()
    resumed_from = backup_epoch(out_dir)
    while True:
        probe = (x_train[:GRAD_NORM_ROWS], y_train[:GRAD_NORM_ROWS])
        callbacks, early, guard, safety, check = _callbacks(config, out_dir, on_epoch, keeper, probe, give_up)
        try:
            fit_x, fit_y, val_x, val_y = _placed(config, x_train, y_train, x_val, y_val)
            fit = model.fit(
                fit_x,
                fit_y,
                validation_data=(val_x, val_y),
                epochs=config.max_epochs,
                batch_size=config.batch_size,
                class_weight=config.class_weight,
                callbacks=callbacks,
                verbose=0,
                shuffle=True,
            )
            break
        except Exception as exc:
            fallback = None if is_out_of_memory(exc) else _fallback(config)
            if fallback is not None:
                setting, config = fallback
                fallbacks.append({"dropped": setting, "error": f"{type(exc).__name__}: {exc}"[:300]})
                _restart(model, initial_weights, out_dir, task, config)
                resumed_from = 0
                continue
            if not is_out_of_memory(exc) or config.batch_size <= 1:
                raise
            steps = (config.gradient_accumulation_steps or 1) * 2
            oom_retries.append(
                {
                    "error": type(exc).__name__,
                    "batch_size": config.batch_size,
                    "new_batch_size": config.batch_size // 2,
                    "gradient_accumulation_steps": steps,
                }
            )
            config = config.model_copy(
                update={"batch_size": config.batch_size // 2, "gradient_accumulation_steps": steps}
            )
            # Start again from the same initial weights with the smaller batch; the effective
            # batch (batch x accumulation steps) stays what was planned.
            _restart(model, initial_weights, out_dir, task, config)
            resumed_from = 0
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    if resumed_from:
        history = _full_history(out_dir / "history.csv", resumed_from + len(history.get("loss", [])))
    losses = history.get("val_loss", [])
    epochs = len(history.get("loss", []))
    finite = [v for v in losses if math.isfinite(v)]
    best_val = min(finite) if finite else float("nan")
    best_epoch = losses.index(best_val) + 1 if finite else 0
    diverged = guard.diverged or any(not math.isfinite(v) for v in history.get("loss", []))
    gave_up = None if diverged else check.verdict
    if diverged:
        reason = "loss diverged (NaN, infinite, or exploded past 1000x its first value)"
    elif gave_up is not None:
        reason = f"cannot reach the best candidate: {gave_up.reason}"
    elif early.stopped_epoch:
        reason = f"early stopping: no val_loss improvement for {config.patience} epochs"
    elif safety.hit:
        reason = cap_reason(config.time_limit_seconds)
    else:
        reason = f"reached the planned max_epochs={config.max_epochs}"
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return TrainResult(
        epochs_trained=epochs,
        initial_epoch=resumed_from,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        stopped_reason=reason,
        diverged=diverged,
        cap_hit=safety.hit,
        gave_up=gave_up,
        train_seconds=round(seconds, 3),
        params=int(model.count_params()),
        history=history,
        checkpoint=str(keeper.best_path),
        checkpoints=keeper.records(),
        oom_retries=oom_retries,
        batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        steps_per_execution=config.steps_per_execution,
        execution_fallbacks=fallbacks,
        summary="\n".join(lines),
    )


def _probe_loss(model, x: np.ndarray, y: np.ndarray) -> float:
    """The model's data loss on the probe rows (cross-entropy or squared error), without a step."""
    out = np.asarray(model.predict_on_batch(x), dtype="float64")
    if model.loss == "sparse_categorical_crossentropy":
        picked = out[np.arange(len(y)), y.astype(int)]
        return float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    return float(((out.ravel() - y.ravel()) ** 2).mean())


def _placed(config: DNNConfig, *arrays: np.ndarray) -> tuple[Any, ...]:
    """The arrays as tensors on the device (copied once, sliced there each step), or as they are."""
    if not config.data_on_device:
        return arrays
    import keras

    return tuple(keras.ops.convert_to_tensor(a) for a in arrays)


def _fallback(config: DNNConfig) -> tuple[str, DNNConfig] | None:
    """The next setting to drop when the device refuses a run: XLA first, then data on the device."""
    if config.jit_compile is True:
        return "jit_compile", config.model_copy(update={"jit_compile": False})
    if config.data_on_device:
        return "data_on_device", config.model_copy(update={"data_on_device": False})
    return None


def _restart(model, initial_weights: list, out_dir: Path, task: str, config: DNNConfig) -> None:
    """Back to the initial weights with a new configuration: no backup or history carries over."""
    shutil.rmtree(out_dir / "backup", ignore_errors=True)
    (out_dir / "history.csv").unlink(missing_ok=True)
    model.set_weights(initial_weights)
    compile_model(model, task, config)


def _full_history(csv_path: Path, epochs: int) -> dict[str, list[float]]:
    """Every epoch's row from CSVLogger (across restarts), the last row of each epoch winning."""
    import csv

    rows: dict[int, dict[str, str]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["epoch"])] = row
    ordered = [rows[e] for e in sorted(rows) if e < epochs]
    keys = [k for k in ordered[0] if k != "epoch"] if ordered else []
    return {k: [float(r[k]) for r in ordered] for k in keys}


def save_history(history: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(history, indent=2))


def refit_dnn(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    n_outputs: int,
    config: DNNConfig,
    seed: int,
    epochs: int,
) -> tuple[Any, dict[str, Any]]:
    """A fresh network with the winning settings, fit on train + validation for the epoch count
    early stopping found best (no rows are left to stop on). TerminateOnNaN guards it; the caller
    keeps the train-only network when this one diverges."""
    import keras

    model = build_dnn(x.shape[1], task, n_outputs, config, seed)
    started = time.perf_counter()
    fit = model.fit(
        x,
        y,
        epochs=max(1, epochs),
        batch_size=config.batch_size,
        class_weight=config.class_weight,
        callbacks=[keras.callbacks.TerminateOnNaN()],
        verbose=0,
        shuffle=True,
    )
    losses = [float(v) for v in fit.history.get("loss", [])]
    diverged = not losses or not all(math.isfinite(v) for v in losses) or len(losses) < max(1, epochs)
    return model, {
        "epochs": len(losses),
        "final_loss": losses[-1] if losses else None,
        "diverged": diverged,
        "fit_seconds": round(time.perf_counter() - started, 3),
        "rows": int(len(y)),
    }
