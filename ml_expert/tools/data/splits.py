"""The run's data files: written in formats that cannot run code, read only after a hash check.

Splits are Parquet and arrays `.npy` (read with `allow_pickle=False`): neither format can carry
executable objects, so a file swapped in a run folder can at worst hold wrong numbers. And it
cannot do that either: each file's SHA-256 is recorded when it is written (in the checkpointed
run state, not next to the file) and checked before every read, so a tampered split is refused
before a byte of it is parsed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml_expert.errors import IntegrityError
from ml_expert.hashing import sha256_file, verify


def write_frame(frame: pd.DataFrame, path: Path) -> str:
    """Write a frame as Parquet and return its SHA-256.

    Raw caller rows can mix types in one column (3, "3", None): those columns are written as
    text, which is how the package reads a category anyway."""
    try:
        frame.to_parquet(path, index=True)
    except (TypeError, ValueError, ImportError) as exc:
        if isinstance(exc, ImportError):
            raise
        mixed = frame.copy()
        for name in mixed.columns:
            if mixed[name].dtype == object:
                mixed[name] = mixed[name].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        mixed.to_parquet(path, index=True)
    return sha256_file(path)


def write_array(array: np.ndarray, path: Path) -> str:
    np.save(path, np.asarray(array), allow_pickle=False)
    return sha256_file(path)


def _check(path: str | Path, hashes: dict[str, str] | None, key: str) -> None:
    expected = (hashes or {}).get(key)
    if not expected:
        raise IntegrityError(
            f"{path}: no SHA-256 recorded for this data file (a run prepared by an older version?); "
            "refusing to read it: start a new run"
        )
    verify(path, expected)


def read_frame(path: str | Path, hashes: dict[str, str] | None, key: str) -> pd.DataFrame:
    """A split, once its hash matches the recorded one."""
    _check(path, hashes, key)
    return pd.read_parquet(path)


def read_array(path: str | Path, hashes: dict[str, str] | None, key: str) -> np.ndarray:
    """An array, once its hash matches; never unpickled."""
    _check(path, hashes, key)
    return np.load(path, allow_pickle=False)
