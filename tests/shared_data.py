"""Where `../shared/datasets` is: the real public datasets several tests learn from.

Beside the clone (CI), two levels up (a worktree under the project's folder), or
`$ML_EXPERT_DATASETS`. Missing, it is one clear error when the tests are collected, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLACES = (
    Path(os.environ.get("ML_EXPERT_DATASETS", "/nonexistent")),
    REPO.parent / "shared" / "datasets",
    REPO.parent.parent / "shared" / "datasets",
)


def shared_datasets() -> Path:
    for place in PLACES:
        if (place / "INDEX.md").is_file():
            return place
    raise RuntimeError(
        "the shared datasets are missing: put the project's shared/ folder beside this clone "
        f"(looked in {', '.join(str(p) for p in PLACES)}) or set ML_EXPERT_DATASETS"
    )


SHARED_DATASETS = shared_datasets()
