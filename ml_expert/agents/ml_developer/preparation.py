"""Data preparation: load, profile, clean and split the data; record every decision."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ml_expert.agents.context import AgentContext
from ml_expert.config import RunConfig
from ml_expert.errors import UsageError
from ml_expert.execution import executor_for
from ml_expert.hashing import sha256_file
from ml_expert.phases import DataResult
from ml_expert.runs import RunFile
from ml_expert.tools.data.loading import LoadInfo
from ml_expert.tools.data.numbers import describe as describe_reading
from ml_expert.tools.data.parquet import DRIVER_MEMORY_SHARE
from ml_expert.tools.data.prepare import RARE_CLASS_ROWS, PreparedData, load_split, prepare_data
from ml_expert.tools.execution_report import ExecutionReport
from ml_expert.tools.mapping import MapFn, sequential_map

BUDGET_ENV = "ML_EXPERT_DRIVER_DATA_BYTES"
"""Bytes one loaded table may take in the driver, instead of DRIVER_MEMORY_SHARE of its available
memory: a larger Parquet dataset is read as a seeded sample that fits (tests force it on tiny data)."""


def read_budget() -> tuple[int, str]:
    """The driver's budget for the loaded table, and where it comes from."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"{BUDGET_ENV}={value!r}: expected a positive number of bytes")
        return int(value), f"{BUDGET_ENV}={int(value):,}"
    import psutil

    available = psutil.virtual_memory().available
    return int(DRIVER_MEMORY_SHARE * available), (
        f"{DRIVER_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available to the driver"
    )


def _file_reader(ctx: AgentContext, address: str | None, where: list[tuple[str, str]]) -> MapFn:
    """How the files of a dataset over the budget are read: one after the other here, or as Ray
    tasks on the run's cluster (connected only now, when there is something to read there)."""

    def read(fn: Callable[[Any, Any], Any], specs: Any, shared: Any, **options: Any) -> list[Any]:
        if not address:
            where.append(
                (
                    f"read the Parquet files one after the other in this process ({len(specs)} files)",
                    "no --ray: the driver holds one file and the sample at a time",
                )
            )
            return sequential_map(fn, specs, shared, **options)

        def progress(report: ExecutionReport) -> None:
            RunFile(ctx.run_dir).update(execution=report.model_dump())
            ctx.emit(
                "tasks",
                done=report.tasks_done,
                in_flight=report.tasks_in_flight,
                per_node=report.tasks_per_node,
            )

        executor = executor_for(address, on_progress=progress)
        cluster = executor.report.cluster
        where.append(
            (
                f"read the Parquet files as {len(specs)} Ray tasks on {address}",
                f"one task per file on {cluster.nodes if cluster else '?'} node(s); each returns its "
                "file's candidate rows, row count and hash, never the whole file",
            )
        )
        results = executor.map(fn, specs, shared, **options)
        RunFile(ctx.run_dir).update(execution=executor.report.model_dump())
        return results

    return read


def _record_read(ctx: AgentContext, info: LoadInfo | None, budget_rule: str) -> None:
    if info is None or info.rows_total is None:
        return
    if info.sample_rows is None:
        ctx.decide(
            "read the Parquet dataset whole in this process",
            f"{info.rows_total:,} rows, about {info.estimated_bytes:,} bytes uncompressed <= the budget "
            f"of {info.budget_bytes:,} bytes ({budget_rule})",
        )
        return
    ctx.decide(
        f"read a seeded sample of {info.sample_rows:,} of the {info.rows_total:,} rows",
        f"{info.sample_rule}. Budget: {budget_rule}. The profile, split and models use the sample",
    )


def data_preparation(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "ml-developer", "data_preparation")
    ctx.start()
    config = RunConfig.of(state)
    ctx.step(f"loading {config.data or 'the demo dataset'}")
    budget, budget_rule = read_budget()
    where: list[tuple[str, str]] = []
    parent = None
    if config.from_ and not config.from_.endswith(".keras"):
        from ml_expert.agents.finetuning import resolve_release

        # its text columns are read with its vocabulary where the rule allows (a .keras file has none)
        parent = resolve_release(config.from_, config.workspace)
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
        read_budget=budget,
        map_fn=_file_reader(ctx, config.ray, where),
        released=parent.schema_ if parent else None,
        released_name=parent.version if parent else "the release",
        released_network=parent is not None and parent.kind == "keras",
    )
    _record_read(ctx, prepared.load, budget_rule)
    for decision, reason in where:
        ctx.decide(decision, reason)
    ctx.decide(f"modality is {prepared.modality}", prepared.modality_reason)
    schema = prepared.input_schema
    if config.from_:
        from ml_expert.agents.finetuning import check_schema

        vocabulary = prepared.vocabulary_check
        if vocabulary is not None:
            shares = ", ".join(
                f"{c.column!r} {c.release_share:.1%} (excess {c.excess:.1%})" for c in vocabulary.columns
            )
            parent_name = vocabulary.parent
            extended = "; ".join(
                f"{e.column!r} {e.release_size} words + {e.added} new = {e.size}"
                for e in vocabulary.extensions
            )
            ctx.decide(
                {
                    "adopted": f"read the text with {parent_name}'s vocabulary: new training tokens unknown "
                    f"to it {shares}",
                    "extended": f"extend {parent_name}'s vocabulary with the new rows' words: {extended}; "
                    f"{shares} of the new training tokens are unknown to it as released",
                    "own": f"learn the text's vocabulary from the new rows: {shares} of the new training "
                    f"tokens are unknown to {parent_name}'s; {parent_name} is not fine-tuned, the models "
                    "from scratch are the fair comparison",
                }[vocabulary.reading],
                vocabulary.rule,
            )
        own_text = vocabulary is not None and vocabulary.reading == "own"
        released = check_schema(
            config.from_, config.workspace, schema, prepared.n_features_out, own_text=own_text
        )
        ctx.decide(
            f"start from {released.version} ({released.model}, run {released.run_id})",
            "--from: the new data has the released model's columns, kinds and classes",
        )
        if released.schema_ is not None:
            from ml_expert.tools.training.finetune import with_released_reading

            schema, adopted = with_released_reading(released.schema_, schema)
            if adopted:
                prepared.input_schema = schema
                if "schema" in prepared.files:
                    Path(prepared.files["schema"]).write_text(schema.model_dump_json(indent=2))
                ctx.decide(
                    f"read {', '.join(map(repr, adopted))} as {released.version} reads them",
                    "the new data's values read the same through the released format (numbers with "
                    "or without its symbol, ISO dates in any order), and the fine-tuned model then "
                    f"takes what {released.version}'s clients send as well",
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
    if prepared.target_spellings_merged:
        ctx.decide(
            f"rewrite {prepared.target_spellings_merged} target label(s) spelt with extra spaces or "
            "another case as their class's most frequent spelling",
            "'yes', 'Yes ' and ' YES' name one class; kept apart they would split it into several",
        )
    for name, reading in prepared.formatted_numbers.items():
        ctx.decide(
            describe_reading(name, reading),
            "its values are numbers written for people; read as text, a price or a measure would be "
            "a high-cardinality category (or dropped as ID-like), and a target would be read as classes",
        )
    for name, count in prepared.nonfinite_values.items():
        ctx.decide(
            f"treat {count} infinite or out-of-range value(s) of {name!r} as missing",
            "beyond float32's range no model can use them; they are imputed like blanks",
        )
    if prepared.rare_classes_dropped:
        rare = prepared.rare_classes_dropped
        ctx.decide(
            f"drop {rare['classes']} class(es) with fewer than {RARE_CLASS_ROWS} rows ({rare['rows']} rows)",
            "a class needs rows in train, validation and test to be learnt and judged; the model "
            "cannot predict it (its name is not recorded: it would point at those rows)",
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
    if prepared.outliers.action:
        ctx.decide(f"outliers: {prepared.outliers.action}", prepared.outliers.rule or "images")
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
    ctx.done(f"{prepared.task}, {prepared.split_sizes.total} rows, {len(schema.columns)} features")
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
            "rare_class_rows": (prepared.rare_classes_dropped or {}).get("rows", 0),
            "outliers_removed": prepared.outliers.dropped,
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
            "vocabulary_check": prepared.vocabulary_check,
        }
    )
