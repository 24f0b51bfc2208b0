"""A Parquet dataset (a folder of `.parquet` files, or one file): checked and sized from the files'
footers, then read whole, or, when larger than the driver's share of memory, as a seeded sample.

The sample is decided part by part (`read_part`: a file, or a run of a large file's row groups),
so the parts can be read one after the other here or in parallel as cluster tasks: the tool is
given a map function (tools/mapping.py) and never knows which. Each row's key comes from the seed,
the file's name and the row's position in it, so the same seed picks the same rows wherever and
in however many parts the files are read.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ml_expert.errors import DataError
from ml_expert.hashing import sha256_file
from ml_expert.tools.mapping import MapFn, sequential_map

DRIVER_MEMORY_SHARE = 0.25
"""A dataset whose estimated in-memory size is larger than this share of the driver's available
memory is not read whole: preparation holds the frame and several copies of it (clean, split,
encoded arrays), and the size estimate (uncompressed Parquet pages) is below pandas' own."""
SAMPLE_MARGIN_SIGMAS = 4.0
"""Each file returns the rows whose key falls under a threshold this many standard deviations
above the expected share, so the N smallest keys of the dataset are (almost surely) among them."""
PART_ROWS = 1 << 20
"""A file is read in parts of whole row groups of about this many rows (pyarrow's default row-group
size), so one large file is read by several tasks in parallel, as a folder of files is."""
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


class ParquetPlan(BaseModel):
    """What the footers say, before any row is read."""

    root: str
    files: list[str]  # relative to root (a single file: its name), sorted: the dataset's row order
    rows: int
    estimated_bytes: int  # uncompressed size of every column chunk: a cheap lower bound in memory
    row_groups: list[list[int]] = []  # per file, the rows of each row group


class PartSpec(BaseModel):
    """One part for `read_part`: a file's row groups `groups` (None: the whole file), whose first
    row is row `start` of the file, and which rows to return (keys under `threshold`; 1.0: all)."""

    path: str
    name: str
    seed: int
    threshold: float
    groups: list[int] | None = None
    start: int = 0


def parquet_files(path: Path) -> list[Path]:
    """The dataset's files: `path` itself, or the `.parquet` files directly in the folder (hidden
    and `_`-prefixed files, as Spark and Hive write beside the data, are not data)."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() == ".parquet" and not p.name.startswith((".", "_"))
    )


def _plain_type(kind: Any) -> Any:
    """A dictionary-encoded column (a pandas categorical) is read as its values: files written
    with more or fewer categories differ only in the width of the dictionary's indices."""
    import pyarrow as pa

    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _columns(schema: Any) -> list[tuple[str, Any]]:
    """The data columns with their types: no unnamed pandas index written as a column."""
    return [(f.name, _plain_type(f.type)) for f in schema if not _PANDAS_INDEX.fullmatch(f.name)]


def _difference(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> str:
    a_types, b_types = dict(a), dict(b)
    missing = [n for n in a_types if n not in b_types]
    extra = [n for n in b_types if n not in a_types]
    if missing or extra:
        parts = ([f"lacks {missing}"] if missing else []) + ([f"adds {extra}"] if extra else [])
        return " and ".join(parts)
    typed = [f"{n!r} is {b_types[n]}, not {t}" for n, t in a if b_types[n] != t]
    if typed:
        return "; ".join(typed[:3])
    return f"orders the columns {list(b_types)}, not {list(a_types)}"


def plan_dataset(path: Path) -> ParquetPlan:
    """Read every footer: one schema for all files (else a DataError naming the first file that
    differs and how), the row count and the uncompressed size. No row is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(path)
    if not files:
        raise DataError(f"{path}: a folder without .parquet files; give a folder of Parquet files")
    root = path if path.is_dir() else path.parent
    first_schema = None
    rows = size = 0
    row_groups: list[list[int]] = []
    for file in files:
        try:
            meta = pq.ParquetFile(file).metadata
            schema = _columns(meta.schema.to_arrow_schema())
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{file}: not a readable Parquet file ({exc}); re-export it") from exc
        if first_schema is None:
            first_schema, first = schema, file
        elif schema != first_schema:
            raise DataError(
                f"{path}: the Parquet files do not share one schema: {file.name} "
                f"{_difference(first_schema, schema)} (compared with {first.name}); write every file "
                "with the same columns and types"
            )
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        row_groups.append([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    if rows == 0:
        raise DataError(f"{path}: the Parquet files hold no data rows")
    return ParquetPlan(
        root=str(root),
        files=[f.relative_to(root).as_posix() for f in files],
        rows=rows,
        estimated_bytes=size,
        row_groups=row_groups,
    )


def _as_data(table: Any) -> Any:
    """The table as data, alike from every file: no pandas metadata or unnamed index, dictionary
    columns as their values, nullable fields (one file's schema concatenates with another's)."""
    import pyarrow as pa

    fields = [f for f in table.schema if not _PANDAS_INDEX.fullmatch(f.name)]
    schema = pa.schema([pa.field(f.name, _plain_type(f.type), nullable=True) for f in fields])
    return table.select([f.name for f in fields]).cast(schema)


def _to_frame(table: Any) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_whole(plan: ParquetPlan) -> pd.DataFrame:
    """Every row, in file order, read here with pyarrow.dataset."""
    import pyarrow.dataset as ds

    dataset = ds.dataset([str(Path(plan.root) / f) for f in plan.files], format="parquet")
    return _to_frame(_as_data(dataset.to_table()))


def row_keys(seed: int, name: str, rows: int, start: int = 0) -> np.ndarray:
    """Uniform keys in [0, 1) for rows start .. start + rows of a file, from the seed and the file's
    name only: the generator skips to `start` (one 64-bit draw per key), so a part's keys are the
    whole file's keys at its rows."""
    name_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    bits = np.random.PCG64(np.random.SeedSequence([seed, name_key]))
    bits.advance(start)
    return np.random.Generator(bits).random(rows)


def plan_parts(
    plan: ParquetPlan, seed: int, threshold: float, part_rows: int | None = None
) -> list[PartSpec]:
    """The parts to read: each file whole, or a large file as runs of whole row groups of at least
    `part_rows` rows (PART_ROWS) each, in file order."""
    part_rows = part_rows or PART_ROWS
    specs = []
    for name, groups in zip(plan.files, plan.row_groups or [None] * len(plan.files), strict=True):
        path = str(Path(plan.root) / name)
        if len(groups or []) < 2 or sum(groups) <= part_rows:  # one task reads it whole
            specs.append(PartSpec(path=path, name=name, seed=seed, threshold=threshold))
            continue
        run: list[int] = []
        start = run_rows = 0
        for index, count in enumerate(groups):
            run.append(index)
            run_rows += count
            if run_rows >= part_rows or index == len(groups) - 1:
                specs.append(
                    PartSpec(path=path, name=name, seed=seed, threshold=threshold, groups=run, start=start)
                )
                start, run, run_rows = start + run_rows, [], 0
    return specs


def read_part(spec: PartSpec, shared: Any = None) -> dict[str, Any]:
    """A part's candidate rows (key under the threshold, in file order), their keys and positions
    in the file, its row count, and the file's SHA-256 from the part that starts it: what the
    driver needs to pick the sample. Runs anywhere; a sampled part is read one row group at a
    time, so it never needs the whole file in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(spec.path)
    groups = list(range(parquet.num_row_groups)) if spec.groups is None else spec.groups
    sizes = [parquet.metadata.row_group(g).num_rows for g in groups]
    rows = sum(sizes)
    keys = row_keys(spec.seed, spec.name, rows, spec.start)
    positions = np.flatnonzero(keys < spec.threshold)
    if len(positions) == rows and spec.groups is None:
        table = _as_data(parquet.read())
    else:
        pieces, start = [_as_data(parquet.schema_arrow.empty_table())], 0
        for group, size in zip(groups, sizes, strict=True):
            stop = start + size
            chosen = positions[(positions >= start) & (positions < stop)] - start
            if len(chosen):
                pieces.append(_as_data(parquet.read_row_group(group)).take(chosen))
            start = stop
        table = pa.concat_tables(pieces)
    return {
        "table": table,
        "keys": keys[positions],
        "positions": positions + spec.start,
        "rows": rows,
        "sha256": sha256_file(spec.path) if spec.start == 0 else None,
    }


def sample_threshold(rows: int, sample: int) -> float:
    """The key threshold each file applies: the expected share plus SAMPLE_MARGIN_SIGMAS sigmas."""
    share = sample / rows
    return min(1.0, share + SAMPLE_MARGIN_SIGMAS * math.sqrt(share * (1 - share) / rows) + 1 / rows)


def read_sample(
    plan: ParquetPlan,
    seed: int,
    sample: int,
    map_fn: MapFn = sequential_map,
    part_rows: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """At most `sample` rows: the ones with the smallest keys in the whole dataset, kept in file
    order. The parts are read by `map_fn` (one task per part: a file, or a run of a large file's
    row groups, `plan_parts`). Returns the rows and the dataset's SHA-256 (of the files' names and
    hashes, in order)."""
    import pyarrow as pa

    threshold = sample_threshold(plan.rows, sample)
    specs = plan_parts(plan, seed, threshold, part_rows)
    parts = map_fn(read_part, specs, (), label="Parquet files")  # nothing shared: no object to put
    digest = hashlib.sha256()
    for spec, part in zip(specs, parts, strict=True):
        if part is None:  # no time limit is given: every part is read
            raise DataError(f"{spec.name}: not read")
        if part["sha256"] is not None:  # the file's first part
            digest.update(spec.name.encode())
            digest.update(part["sha256"].encode())
    index = {name: i for i, name in enumerate(plan.files)}
    keys = np.concatenate([p["keys"] for p in parts])
    file_of = np.concatenate(
        [np.full(len(p["keys"]), index[s.name]) for s, p in zip(specs, parts, strict=True)]
    )
    position = np.concatenate([p["positions"] for p in parts])
    chosen = np.lexsort((position, file_of, keys))[:sample]  # smallest keys; ties by place
    chosen = chosen[np.lexsort((position[chosen], file_of[chosen]))]  # back to file order
    table = pa.concat_tables([p["table"] for p in parts]).take(chosen)
    return _to_frame(table), digest.hexdigest()
