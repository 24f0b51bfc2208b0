"""Data preparation: load, profile, clean and split the data; record every decision."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_expert.agents.context import AgentContext
from ml_expert.config import RunConfig
from ml_expert.hashing import sha256_file
from ml_expert.phases import DataResult
from ml_expert.tools.data.prepare import PreparedData, load_split, prepare_data


def data_preparation(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "ml-developer", "data_preparation")
    ctx.start()
    config = RunConfig.of(state)
    ctx.step(f"loading {config.data or 'the demo dataset'}")
    prepared = prepare_data(
        config.data,
        config.target,
        config.seed,
        ctx.run_dir / "data",
        modality=config.modality,
        keep=config.keep,
        drop=config.drop,
        metric=config.metric,
        task=config.task,
        drop_outliers_rows=config.drop_outliers,
    )
    ctx.decide(f"modality is {prepared.modality}", prepared.modality_reason)
    schema = prepared.input_schema
    if config.from_:
        from ml_expert.agents.finetuning import check_schema

        released = check_schema(config.from_, config.workspace, schema, prepared.n_features_out)
        ctx.decide(
            f"start from {released.version} ({released.model}, run {released.run_id})",
            "--from: the new data has the released model's columns, kinds and classes",
        )
    for name, why in prepared.dropped_columns.items():
        ctx.decide(f"drop column {name!r}", why)
    for name, why in prepared.kept_columns.items():
        ctx.decide(f"keep column {name!r}", f"--keep overrides the heuristic that would drop it ({why})")
    if prepared.duplicates_removed:
        ctx.decide(
            f"remove {prepared.duplicates_removed} duplicate rows",
            "before the split, so no row is in two splits",
        )
    for name, parts in prepared.datetime_columns.items():
        ctx.decide(f"turn datetime column {name!r} into {', '.join(parts)}", "models take numbers, not dates")
    codes = prepared.composite_codes
    for column in codes.columns if codes else []:
        verb = "split" if codes.kept else "do not split"
        ctx.decide(f"{verb} composite code column {column.name!r} at {column.separator!r}", column.rule)
    if codes:  # the parts are measured together: one verdict for all of them
        ctx.decide(f"composite-code parts {'kept' if codes.kept else 'dropped'}", codes.rule)
    counts = prepared.code_counts
    if counts:  # measured together, like the parts
        for name, why in counts.rules.items():
            ctx.decide(f"count the training rows sharing each {name!r} code", why)
        ctx.decide(f"code counts {'kept' if counts.kept else 'dropped'}", counts.rule)
    if prepared.outliers.get("action"):
        ctx.decide(f"outliers: {prepared.outliers['action']}", prepared.outliers.get("rule", "images"))
    ctx.decide(
        "fit imputation, scaling, rare-category grouping and one-hot encoding on the training split only",
        "statistics from validation or test rows would leak into the model",
    )
    data = data_result(prepared).state()
    finding = {k: v for k, v in data.items() if k not in ("files", "schema")}
    finding["profile"] = prepared.profile
    finding["findings"] = prepared.findings
    finding["columns"] = [
        {
            "name": c.name,
            "kind": c.kind,
            **({"derive": c.derive} if c.derive else {}),
            **({"word": c.word} if c.word else {}),
            **({"position": c.position} if c.position is not None else {}),
        }
        for c in schema.columns
    ]
    ctx.record("data-analysis", finding)
    ctx.done(f"{prepared.task}, {sum(prepared.split_sizes.values())} rows, {len(schema.columns)} features")
    return {"data": data, "phase": "data_preparation"}


def data_result(prepared: PreparedData) -> DataResult:
    """The phase's typed result: the figures later phases and gates read, the splits as hashed
    files. Class counts come from the training rows only."""
    schema = prepared.input_schema
    train_y = load_split(prepared.files, "train", schema, prepared.file_hashes)[1]
    counts: dict[str, int] = {}
    if prepared.task == "classification":
        values, freq = np.unique(train_y, return_counts=True)
        counts = {str(int(v)): int(c) for v, c in zip(values, freq, strict=True)}
    return DataResult.model_validate(
        {
            "source": prepared.source,
            "fingerprint": prepared.fingerprint,
            "task": prepared.task,
            "task_reason": prepared.task_reason,
            "modality": prepared.modality,
            "image_shape": prepared.image_shape,
            "sequence": prepared.sequence,
            "schema": schema.model_dump(),
            "features": schema.names,
            "n_features_out": prepared.n_features_out,
            "dropped_columns": prepared.dropped_columns,
            "leakage_suspects": prepared.leakage_suspects,
            "kept_columns": prepared.kept_columns,
            "rows_in": prepared.rows_in,
            "duplicates_removed": prepared.duplicates_removed,
            "rows_without_target": prepared.rows_without_target,
            "outliers_removed": int(prepared.outliers.get("dropped", 0)),
            "outliers": prepared.outliers,
            "split_sizes": prepared.split_sizes,
            "splits_disjoint": prepared.splits_disjoint,
            "classes": schema.classes,
            "train_class_counts": counts,
            "imbalance_ratio": prepared.profile.get("imbalance_ratio"),
            "load": prepared.load.model_dump(exclude_none=True) if prepared.load else {},
            "files": prepared.files,
            "file_hashes": prepared.file_hashes,
            "preprocessor_sha256": sha256_file(prepared.files["preprocessor"]),
        }
    )
