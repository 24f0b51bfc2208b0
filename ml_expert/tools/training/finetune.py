"""Continue training a released model on new data (`--from`), instead of starting from nothing.

The released model keeps its own fitted preprocessing: the new rows are transformed by it, so the
features the model learned on mean the same thing. A scikit-learn model continues where its
estimator can (more boosting iterations or more trees with `warm_start`, more LightGBM rounds from
its booster, a logistic regression from its coefficients); one that cannot (ridge) refits its last
step on the new rows, and says so.
A Keras network continues from its weights at a lower learning rate with the usual callbacks; a
regression network on the target scale it was released with (continue_keras).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ml_expert.errors import IntegrityError, UsageError
from ml_expert.tools.data.numbers import NumberFormat
from ml_expert.tools.data.schema import InputSchema

FINETUNE_LR_FACTOR = 0.1
"""The fine-tuned network's learning rate, as a fraction of the one it was trained with: large
steps would undo what the released weights already hold."""
EXTRA_ROUNDS_SHARE = 0.5
"""Boosting iterations (or trees) added on the new data, as a share of those the model has."""


class Continuation(BaseModel):
    how: str  # "warm_start", "init_model" (LightGBM) or "refit_last_step"
    detail: str
    fit_seconds: float


def network_preprocessor(
    run_file: str, run_sha256: str, released_file: str | None, released_sha256: str | None
) -> tuple[str, str]:
    """(file, SHA-256) of the fitted preprocessing a network's inputs come from: the release's, kept
    with a network fine-tuned from a registry version (`--from`), else the run's own."""
    if not released_file:
        return run_file, run_sha256
    if not released_sha256:
        raise IntegrityError(f"{released_file}: no SHA-256 was recorded for the release's preprocessing")
    return released_file, released_sha256


def schema_differences(parent: InputSchema, new: InputSchema, ignore_text: bool = False) -> list[str]:
    """What keeps the new data from feeding the released model, one line per difference (empty: none).

    `ignore_text`: a text column's words and word ids are not compared (the run learnt a vocabulary
    of its own: tools/data/text.py's VocabularyCheck), only that both read the column as text."""
    out: list[str] = []
    if parent.task != new.task:
        out.append(f"task: released {parent.task}, new {new.task}")
    if parent.target != new.target:
        out.append(f"target: released {parent.target!r}, new {new.target!r}")
    if parent.task == "classification" and list(parent.classes or []) != list(new.classes or []):
        out.append(f"classes: released {parent.classes}, new {new.classes}")

    def described(schema: InputSchema) -> dict[str, set[tuple[str, str | None]]]:
        cols: dict[str, set[tuple[str, str | None]]] = {}
        for c in schema.columns:
            cols.setdefault(c.name, set()).add((c.kind, c.derive))
        return cols

    old_cols, new_cols = described(parent), described(new)
    missing = sorted(set(old_cols) - set(new_cols))
    extra = sorted(set(new_cols) - set(old_cols))
    if missing:
        out.append(f"columns the released model needs but the new data lacks (or were dropped): {missing}")
    if extra:
        out.append(f"columns in the new data the released model does not take: {extra}")
    changed = sorted(n for n in set(old_cols) & set(new_cols) if old_cols[n] != new_cols[n])
    if changed:
        out.append(f"columns whose kind differs: {changed}")
    for name in sorted(set(old_cols) & set(new_cols)):
        if name in changed:
            continue
        out.extend(_reading_differences(name, parent, new))

    def keys(schema: InputSchema) -> list[str]:
        return [c.key for c in schema.columns if not (ignore_text and c.derive in ("word", "token"))]

    if not out and keys(parent) != keys(new):
        out.append("the same columns, but read differently (text vocabulary or derived parts)")
    return out


_DATE_ORDERS = {
    None: "ISO dates (2024-12-31)",
    "dmy": "dmy (31/12/2024)",
    "mdy": "mdy (12/31/2024)",
    "ymd": "ymd (2024/12/31)",
}


def _number_text(number_format: NumberFormat | None) -> str:
    if number_format is None:
        return "plain numbers (1234.56)"
    return f"numbers written like {number_format.example!r}"


def reads_numbers_of(released: NumberFormat | None, new: NumberFormat | None) -> bool:
    """Whether the released model's runtime (`formatted_number` with `released`, or a plain number
    when None) reads every value the new data holds in `new` as the new run read it.

    Plain numbers read the same through any format; the released format may leave its symbol or
    "%" out of a value, never take another currency's symbol, a "%" it does not carry, or (a plain
    column) a thousands separator or parentheses at all."""
    if new is None:
        return True
    if released is None:
        return False
    return new.currency in (None, released.currency) and (released.percent or not new.percent)


def reads_dates_of(released: str | None, new: str | None) -> bool:
    """Whether dates in the new data's order read the same through the released `date_order`: ISO
    dates read alike under every order; 31/12/2024 only under dmy, 12/31/2024 only under mdy,
    2024/12/31 only under ymd (any other order leaves them unread: missing, silently)."""
    return new is None or new == released


def _reading_differences(name: str, parent: InputSchema, new: InputSchema) -> list[str]:
    """Column `name`'s values, as the new data writes them, that the released model's runtime
    would refuse or misread at serving (it reads with the released schema's format)."""
    old_specs = [c for c in parent.columns if c.name == name]
    new_specs = [c for c in new.columns if c.name == name]
    out: list[str] = []
    old_format = next((c.number_format for c in old_specs if c.number_format), None)
    new_format = next((c.number_format for c in new_specs if c.number_format), None)
    if not reads_numbers_of(old_format, new_format):
        out.append(
            f"column {name!r} is read differently: the released model reads {_number_text(old_format)}, "
            f"the new data has {_number_text(new_format)} (the released model would refuse or misread them)"
        )
    old_order = next((c.date_order for c in old_specs if c.date_order), None)
    new_order = next((c.date_order for c in new_specs if c.date_order), None)
    if not reads_dates_of(old_order, new_order):
        out.append(
            f"column {name!r} is read differently: the released model reads dates as "
            f"{_DATE_ORDERS[old_order]}, the new data has {_DATE_ORDERS[new_order]} (the released model "
            "would misread them or read them as missing)"
        )
    return out


def with_released_reading(parent: InputSchema, new: InputSchema) -> tuple[InputSchema, list[str]]:
    """`new` with each column read as the released model reads it where that reading reads the new
    values the same (plain numbers in a "$" column, ISO dates in a dd/mm one), and the names of
    the columns changed: the fine-tuned model then takes what the released one took (a client's
    "$1,234.56", "31/12/2024") as well as the new data's own spelling. Call it once
    `schema_differences` is empty."""
    released = {(c.name, c.derive): c for c in parent.columns}
    columns, changed = [], []
    for col in new.columns:
        old = released.get((col.name, col.derive))
        update: dict[str, Any] = {}
        if old is not None and old.kind == col.kind:
            formats = [(f.currency, f.percent) if f else None for f in (old.number_format, col.number_format)]
            if formats[0] != formats[1] and reads_numbers_of(old.number_format, col.number_format):
                update["number_format"] = old.number_format
            if old.date_order != col.date_order and reads_dates_of(old.date_order, col.date_order):
                update["date_order"] = old.date_order
        if update and col.name not in changed:
            changed.append(col.name)
        columns.append(col.model_copy(update=update) if update else col)
    return (new.model_copy(update={"columns": columns}) if changed else new), changed


def continue_sklearn(pipeline: Any, x_train: Any, y_train: np.ndarray) -> tuple[Any, Continuation]:
    """The released pipeline's last step trained further on the new rows, its preprocessing kept.

    A release that blends several pipelines (a fold bag or an ensemble: a VotingClassifier /
    VotingRegressor, maybe inside a FixedThresholdClassifier) continues each of them, weights and
    threshold kept."""
    inner = getattr(pipeline, "estimator_", pipeline)
    if inner is not pipeline:  # a FixedThresholdClassifier: its model continues, the threshold kept
        pipeline.estimator_, how = continue_sklearn(inner, x_train, y_train)
        return pipeline, how
    if type(inner).__name__ in ("VotingClassifier", "VotingRegressor"):
        parts = [continue_sklearn(member, x_train, y_train) for member in inner.estimators_]
        inner.estimators_ = [member for member, _ in parts]
        for (name, _), (member, _) in zip(inner.named_estimators_.items(), parts, strict=True):
            inner.named_estimators_[name] = member
        hows = sorted({how.how for _, how in parts})
        detail = f"each of its {len(parts)} blended pipelines: " + "; ".join(
            dict.fromkeys(how.detail for _, how in parts)
        )
        seconds = round(sum(how.fit_seconds for _, how in parts), 3)
        return pipeline, Continuation(how="+".join(hows), detail=detail, fit_seconds=seconds)
    started = time.perf_counter()
    prefix, model = pipeline[:-1], pipeline.steps[-1][1]
    features = prefix.transform(x_train)
    name = type(model).__name__
    params = model.get_params(deep=False)
    if "max_iter" in params and name.startswith("HistGradientBoosting"):
        extra = max(1, int(model.n_iter_ * EXTRA_ROUNDS_SHARE))
        model.set_params(warm_start=True, max_iter=model.n_iter_ + extra, early_stopping=False)
        how, detail = "warm_start", f"{name}: {model.n_iter_} boosting iterations + {extra} on the new rows"
    elif "n_estimators" in params and "warm_start" in params and name.startswith("RandomForest"):
        extra = max(1, int(len(model.estimators_) * EXTRA_ROUNDS_SHARE))
        before = len(model.estimators_)
        model.set_params(warm_start=True, n_estimators=before + extra, oob_score=False)
        how, detail = "warm_start", f"{name}: {before} trees + {extra} grown on the new rows"
    elif name == "LogisticRegression":
        model.set_params(warm_start=True)
        how, detail = "warm_start", f"{name}: the solver starts from the released coefficients"
    elif name in ("LGBMClassifier", "LGBMRegressor"):
        # LightGBM has no warm_start: boosting continues from the released booster (init_model), whose
        # trees are kept and whose predictions the new rounds correct
        booster, before = model.booster_, model.booster_.current_iteration()
        extra = max(1, int(before * EXTRA_ROUNDS_SHARE))
        model.set_params(n_estimators=extra)
        model.fit(features, y_train, init_model=booster)
        model.set_params(n_estimators=before + extra)  # what it holds now, as its params say
        detail = f"{name}: {before} boosting rounds + {extra} on the new rows"
        return pipeline, Continuation(
            how="init_model", detail=detail, fit_seconds=round(time.perf_counter() - started, 3)
        )
    else:
        how, detail = "refit_last_step", f"{name} cannot continue training: refit on the new rows"
    model.fit(features, y_train)
    if hasattr(model, "warm_start"):
        model.set_params(warm_start=False)
    return pipeline, Continuation(how=how, detail=detail, fit_seconds=round(time.perf_counter() - started, 3))


def continue_keras(
    model: Any,
    task: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: Any,
    out_dir: Path,
) -> tuple[Any, Any]:
    """The released network trained further from its weights at FINETUNE_LR_FACTOR x its learning
    rate, with the same callbacks (early stopping on `x_val`, checkpoints, divergence guard).

    A regression network is served in the target's units through its `target_scale` layer
    (tools/training/dnn.py): the network under it learnt z-scores of its own training split, and its
    weights only mean something on that scale. It continues on the new targets standardised with
    the release's mean and std (not the new rows' own), and is served again through that same scale,
    so the fine-tuned copy takes `y_train`/`y_val` and returns predictions in the target's units,
    as the released one does. A network without that layer is refused."""
    from ml_expert.tools.training.dnn import (
        compile_model,
        target_scale,
        train_dnn,
        with_target_scale,
        without_target_scale,
    )

    config = config.model_copy(update={"learning_rate": config.learning_rate * FINETUNE_LR_FACTOR})
    if task != "regression":
        compile_model(model, task, config)
        result = train_dnn(model, x_train, y_train, x_val, y_val, config, out_dir, task=task)
        return model, result
    scale = target_scale(model)
    if scale is None:
        raise UsageError("a regression network without its target_scale layer: its output scale is unknown")
    mean, std = scale
    network = without_target_scale(model)
    compile_model(network, task, config)
    z_train = ((np.asarray(y_train, dtype="float64") - mean) / std).astype("float32")
    z_val = ((np.asarray(y_val, dtype="float64") - mean) / std).astype("float32")
    result = train_dnn(network, x_train, z_train, x_val, z_val, config, out_dir, task=task)
    return with_target_scale(network, mean, std, name=model.name), result


def extend_embedding(model: Any, added: int, seed: int) -> Any:
    """A copy of a text network whose word embedding has `added` more rows, for words appended to
    its vocabulary (tools/data/text.py's VocabularyExtension): ids 0..n-1 keep their rows bit for
    bit, every other weight is as released, and the new rows are drawn by the layer's own
    initializer (seeded), as Keras draws a fresh layer's. A text made of known words is therefore
    predicted exactly as before; a new word starts where a network trained from scratch starts.
    The network has exactly one Embedding layer (build_dnn's text branch), else a UsageError."""
    import keras

    embeddings = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    if len(embeddings) != 1:
        raise UsageError(f"the network has {len(embeddings)} word embeddings; its vocabulary extends one")
    if added < 0:
        raise ValueError(f"cannot extend a vocabulary by {added} words")
    layer = embeddings[0]
    config = model.get_config()
    for spec in config["layers"]:
        if spec["config"].get("name") == layer.name:
            spec["config"]["input_dim"] = int(layer.input_dim) + added
    extended = model.__class__.from_config(config)
    old_rows = np.asarray(layer.embeddings.numpy())
    initializer_config = keras.initializers.serialize(layer.embeddings_initializer)
    initializer_config["config"] = {**initializer_config.get("config", {}), "seed": seed}
    initializer = keras.initializers.deserialize(initializer_config)
    drawn = initializer(shape=(added, old_rows.shape[1]), dtype="float32")
    new_rows = np.asarray(drawn, dtype=old_rows.dtype)
    for target in extended.layers:
        source = model.get_layer(target.name)
        if target.name == layer.name:
            target.set_weights([np.concatenate([old_rows, new_rows], axis=0)])
        else:
            target.set_weights(source.get_weights())
    return extended
