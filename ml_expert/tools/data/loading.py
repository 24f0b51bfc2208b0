"""Read a table from a file or a bundled demo set, refusing what is not a table."""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

import pandas as pd

from ml_expert.errors import DataError

DEMO_SETS = ("breast_cancer", "iris", "wine", "diabetes", "titanic", "penguins")
DEFAULT_DEMO = "breast_cancer"
# Placeholders people write for "missing" in exported spreadsheets.
NA_VALUES = ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "-"]
_ENCODINGS = ("utf-8-sig", "latin-1")


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
        raise DataError(f"{source}: no such file; give a CSV path or a demo name ({', '.join(DEMO_SETS)})")
    if path.is_dir():
        raise DataError(f"{source} is a directory; give a CSV file")
    return path


def load_table(source: str | None) -> tuple[pd.DataFrame, Path]:
    path = resolve_source(source)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; give a CSV with a header row and data rows")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path}: binary content, not a CSV table")
    text = _decode(raw, path)
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype", "<html", "<?xml")):
        raise DataError(f"{path}: looks like HTML/XML, not a CSV table")
    delimiter = _sniff_delimiter(text)
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
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: header only, no data rows")
    return frame, path


def _decode(raw: bytes, path: Path) -> str:
    for encoding in _ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: cannot decode as UTF-8 or Latin-1")  # pragma: no cover (latin-1 decodes all)


def _sniff_delimiter(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(",;\t|", key=first.count) if first else ","


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1]
