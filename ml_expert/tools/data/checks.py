"""What the data gate verifies about the prepared splits, from the files themselves.

The gate must not take the preparation's word for it: the arrays the models will read are
re-opened and checked (present, finite, as many rows and columns as recorded) and the fitted
preprocessor must still be the one whose hash was recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml_expert.hashing import sha256_file
from ml_expert.tools.data.splitting import SplitSizes


def prepared_problems(
    files: dict[str, str], split_sizes: SplitSizes, n_features_out: int, preprocessor_sha256: str | None
) -> list[str]:
    """Every problem found in the prepared splits; an empty list means they are usable."""
    problems: list[str] = []
    for split, rows in (("train", split_sizes.train), ("val", split_sizes.val)):
        name = f"X_{split}"
        if not files.get(name) or not Path(files[name]).is_file():
            problems.append(f"{name} is missing")
            continue
        array = np.load(files[name], mmap_mode="r")
        if array.ndim != 2 or array.shape != (rows, n_features_out):
            problems.append(f"{name} has shape {array.shape}, recorded ({rows}, {n_features_out})")
        elif not np.isfinite(array).all():
            problems.append(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    preprocessor = files.get("preprocessor")
    if not preprocessor or not Path(preprocessor).is_file():
        problems.append("the fitted preprocessor is missing")
    elif sha256_file(preprocessor) != preprocessor_sha256:
        problems.append("the fitted preprocessor changed after it was written (SHA-256 mismatch)")
    return problems
