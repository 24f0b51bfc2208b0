"""Read a table from a CSV, Parquet, `.npz`, an image folder or a bundled demo set.

Whatever cannot be read as a table is refused with a DataError that names the problem and the
fix. Array and image sources become a table of numeric pixel columns (row-major, channels
last) plus the label column, so every later phase sees one kind of input.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ml_expert.errors import DataError
from ml_expert.tools.mapping import MapFn, sequential_map

DEMO_SETS = ("breast_cancer", "iris", "wine", "diabetes", "titanic", "penguins")
DEFAULT_DEMO = "breast_cancer"
# Placeholders people write for "missing" in exported spreadsheets.
NA_VALUES = ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "-"]
_ENCODINGS = ("utf-8-sig", "latin-1")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Images larger than this on their longer side are scaled down: a small CNN does not need more.
MAX_IMAGE_SIDE = 64
# More unreadable images than this fraction of an image folder is refused, not absorbed.
MAX_CORRUPT_FRACTION = 0.2


class LoadInfo(BaseModel):
    """How the source was read: recorded in the profile so a reader can check it."""

    format: str
    encoding: str | None = None
    delimiter: str | None = None
    image_shape: list[int] | None = Field(default=None, description="[h, w, c] when the source holds images")
    images_read: int | None = None
    images_skipped: int | None = None
    image_resize: str | None = None
    files: int | None = Field(default=None, description="Parquet files in the dataset (a folder)")
    rows_total: int | None = Field(default=None, description="rows in the dataset, from the files' footers")
    estimated_bytes: int | None = Field(
        default=None, description="the dataset's uncompressed size, from the footers (no row read)"
    )
    budget_bytes: int | None = Field(default=None, description="the driver's share of memory for one frame")
    sample_rows: int | None = Field(
        default=None, description="a dataset over the budget: the rows read (a seeded sample)"
    )
    sample_rule: str | None = None
    dataset_sha256: str | None = Field(
        default=None, description="sampled: SHA-256 of the files' names and hashes (the sample has its own)"
    )


def demo_path(name: str) -> Path:
    if name not in DEMO_SETS:
        raise DataError(f"unknown demo dataset {name!r}; choose one of {', '.join(DEMO_SETS)}")
    return Path(str(resources.files("ml_expert.datasets").joinpath(f"{name}.csv")))


def resolve_source(source: str | None) -> Path:
    """A path, or a demo name (`demo`, `demo:iris`, `iris`) when no such file exists."""
    if source is None or source in ("demo", ""):
        return demo_path(DEFAULT_DEMO)
    if source.startswith("demo:"):
        return demo_path(source.split(":", 1)[1])
    path = Path(source).expanduser()
    if not path.exists():
        if source in DEMO_SETS:
            return demo_path(source)
        raise DataError(
            f"{source}: no such file or folder; give a CSV/Parquet/.npz path, a folder of Parquet files, "
            f"an image folder or a demo name ({', '.join(DEMO_SETS)})"
        )
    return path


def load_table(source: str | None, columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, Path]:
    """The table behind `source` (label column named `target` for arrays and images).

    `columns` are the ones a model takes: a one-column file of free text is a table when its
    header is one of them (the rows a text model predicts on), and prose otherwise."""
    frame, path, _ = load_source(source, columns=columns)
    return frame, path


def load_source(
    source: str | None,
    target: str = "target",
    columns: tuple[str, ...] = (),
    *,
    seed: int = 0,
    budget_bytes: int | None = None,
    map_fn: MapFn = sequential_map,
) -> tuple[pd.DataFrame, Path, LoadInfo]:
    """Read any supported source; arrays and image folders get their label column named `target`.

    A Parquet dataset (a folder of files, or one file) larger than `budget_bytes` in memory is read
    as a seeded sample that fits it, file by file through `map_fn` (None: no budget, read whole)."""
    path = resolve_source(source)
    if path.is_dir():
        if any(p.suffix.lower() == ".parquet" for p in path.iterdir() if p.is_file()):
            return _load_parquet_dataset(path, seed, budget_bytes, map_fn)
        return _load_image_folder(path, target)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; give a table with a header row and data rows")
    with path.open("rb") as handle:
        magic = handle.read(8)
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods"):
        raise DataError(f"{path}: a spreadsheet workbook, not a table file; save the sheet as CSV")
    if magic[:4] == b"PAR1" or path.suffix.lower() == ".parquet":
        if budget_bytes is not None:
            return _load_parquet_dataset(path, seed, budget_bytes, map_fn)
        return _load_parquet(path)
    if path.suffix.lower() == ".zip":  # a zipped CSV (data.csv.zip); a .npz is a zip of arrays
        return _load_csv(path, columns)
    if magic[:2] == b"PK" or path.suffix.lower() == ".npz":
        return _load_npz(path, target)
    return _load_csv(path, columns)


MAX_DECOMPRESSED_BYTES = 8 << 30
"""A compressed CSV that inflates beyond this is refused (a decompression bomb, not data)."""


def _read_maybe_compressed(path: Path) -> bytes:
    """The file's bytes; a gzip/bz2/xz-compressed CSV (data.csv.gz) is inflated first, and so is the
    one file of a zip archive (data.csv.zip)."""
    import bz2
    import gzip
    import lzma

    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic[:2] == b"PK":
        return _read_zipped(path)
    opener = None
    if magic[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif magic[:3] == b"BZh":
        opener = bz2.open
    elif magic[:6] == b"\xfd7zXZ\x00":
        opener = lzma.open
    if opener is None:
        return path.read_bytes()
    try:
        with opener(path, "rb") as handle:
            raw = handle.read(MAX_DECOMPRESSED_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: a compressed file that does not decompress ({exc})") from exc
    if len(raw) > MAX_DECOMPRESSED_BYTES:
        raise DataError(
            f"{path}: inflates to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB; refusing to read it"
        )
    return raw


def _read_zipped(path: Path) -> bytes:
    """The one member of a zipped CSV, bounded like the other compressed forms."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members][:10]
                raise DataError(f"{path}: a zip archive of {len(members)} files {names}; zip one CSV file")
            with archive.open(members[0]) as handle:
                raw = handle.read(MAX_DECOMPRESSED_BYTES + 1)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # a compression method zipfile does not know
        RuntimeError,  # an encrypted member: there is no password to give
        OSError,
        EOFError,
    ) as exc:
        raise DataError(f"{path}: a zip archive that does not decompress ({exc})") from exc
    if len(raw) > MAX_DECOMPRESSED_BYTES:
        raise DataError(
            f"{path}: inflates to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB; refusing to read it"
        )
    return raw


def _load_csv(path: Path, columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, Path, LoadInfo]:
    raw = _read_maybe_compressed(path)
    utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # "Unicode text" exports of spreadsheets
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: starts like UTF-16 but does not decode; save it as UTF-8 CSV") from exc
    head = raw[:8192]
    controls = sum(b < 32 and b not in (9, 10, 13) for b in head)
    if b"\x00" in head or controls > len(head) * 0.01:
        raise DataError(f"{path}: binary content, not a table; give a CSV (or Parquet/.npz) file")
    text, encoding = _decode(raw)
    lead = text.lstrip()[:200].lower()
    if lead.startswith(("<!doctype", "<html", "<?xml", "<head", "<body", "{", "[")):
        what = "JSON" if lead.startswith(("{", "[")) else "HTML/XML"
        raise DataError(f"{path}: looks like {what}, not a CSV table; export the data as CSV")
    if _looks_like_prose(text):
        raise DataError(
            f"{path}: not a table (the first line is a sentence, not a header); give a comma-, semicolon- "
            "or tab-separated file with a header row"
        )
    delimiter = _sniff_delimiter(text)
    _check_field_counts(text, delimiter, path)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, na_values=NA_VALUES, keep_default_na=True, engine="c"
        )
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{path}: rows have inconsistent field counts ({_first_line(exc)}); fix the file"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: no columns found; give a CSV with a header row") from exc
    if delimiter == ";" and _decimal_commas(frame):
        # A semicolon file from a locale that writes 1,5 for 1.5 (and 1.234,5 for 1234.5).
        frame = pd.read_csv(io.StringIO(text), sep=";", decimal=",", na_values=NA_VALUES, engine="c")
        frame = _thousands_dots(frame)
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: header only, no data rows; add data rows below the header")
    expected = frame.columns[0] in columns
    if frame.shape[1] == 1 and len(frame) > 1 and not _tabular_text(text) and not expected:
        raise DataError(
            f"{path}: not a table (one column, no delimiter found); give a comma-, semicolon- or "
            "tab-separated file with a header row"
        )
    frame = frame.replace([np.inf, -np.inf], np.nan)
    encoding = "utf-16" if utf16 else encoding
    return frame, path, LoadInfo(format="csv", encoding=encoding, delimiter=delimiter)


def _looks_like_prose(text: str) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return len(first.split()) >= 5 and first[-1] in ".!?:" and not any(d in first for d in ";\t|")


_EUROPEAN_NUMBER = r"-?\d{1,3}(?:\.\d{3})+(?:,\d+)?|-?\d+,\d+"
"""1,5 or 1.234,56 or 1.234: a decimal comma, dots grouping thousands."""


def _decimal_commas(frame: pd.DataFrame) -> bool:
    texts = frame.select_dtypes(include=["object", "string"])
    for name in texts.columns:
        values = texts[name].dropna().astype(str).str.strip()
        if len(values) and values.str.fullmatch(r"-?\d+,\d+").mean() >= 0.9:
            return True
        if (
            len(values)
            and values.str.contains(",").any()
            and values.str.fullmatch(_EUROPEAN_NUMBER).mean() >= 0.9
        ):
            return True
    return False


def _thousands_dots(frame: pd.DataFrame) -> pd.DataFrame:
    """In a decimal-comma file, a text column of numbers such as 1.234,56 (dots grouping thousands:
    pandas' `decimal=","` reads only 1234,56) read as numbers; per column, so a dotted code or an
    address elsewhere in the file is left alone."""
    replaced: dict[str, pd.Series] = {}
    for name in frame.select_dtypes(include=["object", "string"]).columns:
        values = frame[name].dropna().astype(str).str.strip()
        pattern = r"-?\d{1,3}(?:\.\d{3})*(?:,\d+)?"
        if len(values) and values.str.fullmatch(pattern).mean() >= 0.95 and values.str.contains(r"\.").any():
            text = frame[name].astype("string").str.strip().str.replace(".", "", regex=False)
            numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
            replaced[name] = numbers.astype("float64")
    return frame.assign(**replaced) if replaced else frame


def _tabular_text(text: str) -> bool:
    """A one-column CSV is fine when its lines are short values, not prose."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    return bool(lines) and max(len(line) for line in lines) <= 60 and " " not in lines[0].strip()


def _check_field_counts(text: str, delimiter: str, path: Path) -> None:
    """Every record (quoted newlines allowed) must have the header's number of fields."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: no columns found; give a CSV with a header row")
    expected = len(header)
    bad: list[tuple[int, int]] = []
    for record in reader:
        if not record or (len(record) == 1 and not record[0].strip() and expected > 1):
            continue  # blank line
        if len(record) != expected:
            bad.append((reader.line_num, len(record)))
            if len(bad) >= 3:
                break
    if bad:
        listed = ", ".join(f"line {line}: {n} fields" for line, n in bad)
        raise DataError(
            f"{path}: rows have inconsistent field counts (header has {expected} fields; {listed}); "
            "fix those lines or quote fields that contain the delimiter"
        )


def _load_parquet(path: Path) -> tuple[pd.DataFrame, Path, LoadInfo]:
    import pyarrow

    try:
        frame = pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: the Parquet file has no data rows")
    return frame, path, LoadInfo(format="parquet")


def _load_parquet_dataset(
    path: Path, seed: int, budget_bytes: int | None, map_fn: MapFn
) -> tuple[pd.DataFrame, Path, LoadInfo]:
    """A folder of Parquet files (or one file with a budget): whole when it fits the budget, else a
    seeded sample of the rows that do. A single file that fits is read as before."""
    from ml_expert.tools.data.parquet import plan_dataset, read_sample, read_whole

    plan = plan_dataset(path)
    info = LoadInfo(
        format="parquet",
        files=len(plan.files) if path.is_dir() else None,
        rows_total=plan.rows,
        estimated_bytes=plan.estimated_bytes,
        budget_bytes=budget_bytes,
    )
    if budget_bytes is None or plan.estimated_bytes <= budget_bytes:
        if path.is_file():
            return _load_parquet(path)
        return read_whole(plan), path, info
    per_row = plan.estimated_bytes / plan.rows
    sample = max(1, int(budget_bytes // per_row))
    frame, digest = read_sample(plan, seed, sample, map_fn)
    info.sample_rows = len(frame)
    info.dataset_sha256 = digest
    info.sample_rule = (
        f"{plan.rows:,} rows, about {plan.estimated_bytes:,} bytes uncompressed ({per_row:,.0f} per row) "
        f"> the driver's budget of {budget_bytes:,} bytes: the {sample:,} rows with the smallest keys, "
        f"a key per row drawn from the seed ({seed}), its file's name and its position in the file "
        f"(the same rows wherever the files are read), in file order; {len(frame):,} rows read"
    )
    return frame, path, info


def _load_npz(path: Path, target: str) -> tuple[pd.DataFrame, Path, LoadInfo]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if "X" not in names or "y" not in names:
                raise DataError(f"{path}: a .npz needs arrays named 'X' and 'y'; it holds {names}")
            X, y = arrays["X"], arrays["y"]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{path}: holds pickled Python objects, which are not loaded (unsafe); save labels as "
                "numbers or a unicode array (y.astype(str))"
            ) from exc
        raise DataError(f"{path}: not a readable .npz file ({exc}); save it with numpy.savez") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); save it with numpy.savez") from exc
    if len(X) != len(y) or y.ndim != 1:
        raise DataError(
            f"{path}: X has {len(X)} rows but y has shape {list(y.shape)}; y must be 1-D, one per row"
        )
    if len(X) == 0:
        raise DataError(f"{path}: X has no rows")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    image_shape: list[int] | None = None
    if X.ndim == 2:
        columns = [f"x{i}" for i in range(X.shape[1])]
        flat = X
    elif X.ndim in (3, 4):
        if X.ndim == 4 and X.shape[1] in (1, 3) and X.shape[3] not in (1, 3):
            X = np.transpose(X, (0, 2, 3, 1))  # channels first (PyTorch layout) -> channels last
        h, w = int(X.shape[1]), int(X.shape[2])
        c = int(X.shape[3]) if X.ndim == 4 else 1
        image_shape = [h, w, c]
        flat = X.reshape(len(X), h * w * c)
        columns = _pixel_names(h, w, c)
    else:
        raise DataError(f"{path}: X has {X.ndim} dimensions; give [N, features], [N, h, w] or [N, h, w, c]")
    frame = pd.DataFrame(flat.astype("float64"), columns=columns)
    frame[target] = y.tolist() if y.dtype.kind in "USO" else y
    return frame, path, LoadInfo(format="npz", image_shape=image_shape)


def _pixel_names(h: int, w: int, c: int) -> list[str]:
    """Row-major, channels last: the order the CNN reshapes back to [h, w, c]."""
    if c == 1:
        return [f"pixel_{i}_{j}" for i in range(h) for j in range(w)]
    return [f"pixel_{i}_{j}_{k}" for i in range(h) for j in range(w) for k in range(c)]


def _load_image_folder(path: Path, target: str) -> tuple[pd.DataFrame, Path, LoadInfo]:
    """One sub-folder per class of PNG/JPEG files; unreadable files skipped and counted."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, d.name) for d in classes for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(
            f"{path} is a folder without images or .parquet files; give a file, a folder of Parquet "
            "files, or a folder with one sub-folder per class holding PNG/JPEG images"
        )
    images: list[tuple[Any, str]] = []
    skipped = 0
    for file, label in files:
        try:
            with Image.open(file) as img:
                img.load()
                images.append((img.copy(), label))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            skipped += 1
    if not images or skipped > MAX_CORRUPT_FRACTION * len(files):
        raise DataError(
            f"{path}: {skipped} of {len(files)} images cannot be read (more than "
            f"{MAX_CORRUPT_FRACTION:.0%}); fix or remove the corrupt files"
        )
    grey = all(img.mode in ("1", "L", "LA", "I", "I;16", "F") for img, _ in images)
    mode, c = ("L", 1) if grey else ("RGB", 3)
    sizes = Counter(img.size for img, _ in images)
    (w, h), _ = sizes.most_common(1)[0]
    scale = min(1.0, MAX_IMAGE_SIDE / max(w, h))
    w, h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = sum(img.size != (w, h) for img, _ in images)
    pixels = np.stack(
        [
            np.asarray(img.convert(mode).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64).reshape(
                -1
            )
            for img, _ in images
        ]
    )
    frame = pd.DataFrame(pixels, columns=_pixel_names(h, w, c))
    frame[target] = [label for _, label in images]
    why = f"the most common size {w}x{h}" + (f" (scaled to at most {MAX_IMAGE_SIDE} px)" if scale < 1 else "")
    colour = "grayscale" if c == 1 else "RGB"
    info = LoadInfo(
        format="image-folder",
        image_shape=[h, w, c],
        images_read=len(images),
        images_skipped=skipped,
        image_resize=f"{resized} of {len(images)} images resized to {why}, {colour}",
    )
    return frame, path, info


def _decode(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"  # latin-1 decodes every byte string


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same, largest number of fields."""
    sample = text[:65536]
    candidates = ",;\t|"
    scores = {}
    for delimiter in candidates:
        try:
            rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))[:50]
        except csv.Error:
            continue
        rows = [r for r in rows if r]
        if len(rows) > 1 and not sample.endswith("\n") and len(sample) == 65536:
            rows = rows[:-1]  # the sample may cut the last record
        if not rows:
            continue
        widths = Counter(len(r) for r in rows)
        width, count = widths.most_common(1)[0]
        if width > 1:
            scores[delimiter] = (count / len(rows), width, len(rows[0]) == width)
    if not scores:
        return ","
    # Prefer a delimiter that splits the header as it splits the rows (a comma inside 1.234,56 in a
    # semicolon file splits rows, not the header), then one that splits (nearly) every line alike;
    # among those, the one giving most fields.
    return max(scores, key=lambda d: (scores[d][2], scores[d][0] >= 0.9, scores[d][1], scores[d][0]))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1]
