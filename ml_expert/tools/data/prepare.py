"""Phase 1 as one deterministic tool: load, profile, validate, clean, split, fit preprocessing.

Writes the cleaned splits and the preprocessed arrays under `data_dir` and returns a summary
that holds figures only, never rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel

from ml_expert.errors import DataError
from ml_expert.tools.data.loading import load_table
from ml_expert.tools.data.modality import detect_modality
from ml_expert.tools.data.preprocessing import build_preprocessor, fitted_categories, transform
from ml_expert.tools.data.profiling import column_roles, leakage_suspects, profile_table
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame
from ml_expert.tools.data.splitting import split_frame
from ml_expert.tools.data.task import detect_task

TARGET_COLUMN = "__target__"


class PreparedData(BaseModel):
    source: str
    fingerprint: str
    task: str
    task_reason: str
    modality: str
    modality_reason: str
    image_shape: list[int] | None
    input_schema: InputSchema
    profile: dict[str, Any]
    dropped_columns: dict[str, str]
    leakage_suspects: dict[str, str]
    rows_in: int
    duplicates_removed: int
    rows_without_target: int
    split_sizes: dict[str, int]
    splits_disjoint: bool
    n_features_out: int
    files: dict[str, str]


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of the table (values and column names), independent of the file's bytes."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def prepare_data(
    source: str | None, target: str, seed: int, data_dir: Path, modality: str = "auto"
) -> PreparedData:
    frame, path = load_table(source)
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found; the columns are: {', '.join(map(str, frame.columns))}. "
            "Pass --target NAME"
        )
    rows_in = len(frame)
    data_fingerprint = fingerprint(frame)
    no_target = int(frame[target].isna().sum())
    if no_target == rows_in:
        raise DataError(f"target column {target!r} is entirely missing")
    frame = frame[frame[target].notna()]
    features = [c for c in frame.columns if c != target]
    if not features:
        raise DataError("no feature columns: the table holds only the target")
    if frame[features].isna().all().all():
        raise DataError("every feature value is missing")
    task, task_reason = detect_task(frame[target])
    if task == "classification":
        n_classes = frame[target].nunique()
        if n_classes < 2:
            raise DataError(f"the target {target!r} has one class only; a classifier needs at least two")
        if n_classes == len(frame) and len(frame) > 2:
            raise DataError(f"the target {target!r} is unique on every row; it cannot be a class label")
    kind, image_shape, modality_reason = detect_modality(frame, target, modality)
    before = len(frame)
    frame = frame.drop_duplicates()
    duplicates = before - len(frame)

    if kind == "image":
        # Pixels are all features: a border pixel that is always 0 is still part of the image.
        kinds, dropped = {c: "numeric" for c in frame.columns if c != target}, {}
        suspects = {}
    else:
        kinds, dropped = column_roles(frame, target)
        suspects = leakage_suspects(frame, target, kinds, task)
    for name, why in suspects.items():
        kinds.pop(name, None)
        dropped[name] = f"leakage suspect: {why}"
    if not kinds:
        raise DataError("no usable feature columns: " + "; ".join(f"{k}: {v}" for k, v in dropped.items()))
    profile = profile_table(frame, target, task)

    classes: list[Any] | None = None
    y_all = frame[target]
    if task == "classification":
        classes = sorted(y_all.unique().tolist(), key=lambda v: (str(type(v)), v))
        classes = [_plain(c) for c in classes]
        index = {c: i for i, c in enumerate(classes)}
        y_all = y_all.map(lambda v: index[_plain(v)]).astype("int64")
    else:
        y_all = pd.to_numeric(y_all, errors="coerce")
        if y_all.isna().any():
            raise DataError(f"the regression target {target!r} holds non-numeric values")
        y_all = y_all.astype("float64")

    columns = [ColumnSpec(name=c, kind=k) for c, k in kinds.items()]  # type: ignore[arg-type]
    schema = InputSchema(task=task, target=target, columns=columns, classes=classes)
    work = to_model_frame(frame, schema)
    work[TARGET_COLUMN] = y_all.to_numpy()
    train, val, test = split_frame(work, TARGET_COLUMN, task, seed)

    preprocessor = build_preprocessor(schema, scale=True)
    preprocessor.fit(train[schema.keys])
    categories = fitted_categories(preprocessor, schema)
    schema = schema.model_copy(
        update={
            "columns": [c.model_copy(update={"categories": categories.get(c.key)}) for c in schema.columns]
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        file = data_dir / f"{name}.pkl"
        part.to_pickle(file)
        files[name] = str(file)
    for name, part in (("train", train), ("val", val)):
        file = data_dir / f"X_{name}.npy"
        np.save(file, transform(preprocessor, part[schema.keys]))
        files[f"X_{name}"] = str(file)
    joblib.dump(preprocessor, data_dir / "preprocessor.joblib")
    files["preprocessor"] = str(data_dir / "preprocessor.joblib")
    (data_dir / "schema.json").write_text(schema.model_dump_json(indent=2))
    files["schema"] = str(data_dir / "schema.json")

    index_sets = [set(train.index), set(val.index), set(test.index)]
    disjoint = sum(map(len, index_sets)) == len(set().union(*index_sets))
    return PreparedData(
        source=str(path),
        fingerprint=data_fingerprint,
        task=task,
        task_reason=task_reason,
        modality=kind,
        modality_reason=modality_reason,
        image_shape=image_shape,
        input_schema=schema,
        profile=profile,
        dropped_columns=dropped,
        leakage_suspects=suspects,
        rows_in=rows_in,
        duplicates_removed=duplicates,
        rows_without_target=no_target,
        split_sizes={"train": len(train), "val": len(val), "test": len(test)},
        splits_disjoint=disjoint,
        n_features_out=int(np.load(files["X_train"], mmap_mode="r").shape[1]),
        files=files,
    )


def _plain(value: Any) -> Any:
    """numpy scalars to Python, integral floats to int, so labels are JSON-stable."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def load_split(files: dict[str, str], name: str, schema: InputSchema) -> tuple[pd.DataFrame, np.ndarray]:
    part = pd.read_pickle(files[name])
    return part[schema.keys], part[TARGET_COLUMN].to_numpy()
