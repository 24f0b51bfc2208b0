"""One released text CNN for the whole test run, shared by every file that needs one.

Training and releasing the text network is the suite's costliest fixture (about 150 s on the 2-core
CI machine), and tests/test_text_sequence.py and tests/test_finetune_vocabulary.py each used to build
their own. A session fixture runs once per pytest-xdist worker, so the release is built once on disk
under the run's shared temporary folder, behind an exclusive `fcntl.flock`: the first worker to ask
builds it, the other waits and reads it. A workspace that a test changes (`--from`, `predict`) must
be a copy (`copy_workspace`); the release itself is only read.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from cli_helpers import run_quick
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not an installed package
from benchmarks.vocabulary_shift import SUBJECTS, reviews  # noqa: E402

ROWS = 1200
SEED = 2  # the run's seed: at 2 the text CNN ships on these reviews (checked by the consumers)
BUDGET = "150"  # at 60 the network could be skipped for time on a loaded 2-core machine


class TextRelease(BaseModel):
    """A workspace whose registry's production (v1) is a text CNN on `data`; `summary` is the run's
    JSON summary (run_id, run_dir, chosen_model, metrics)."""

    root: Path
    data: Path
    workspace: Path
    summary: dict[str, Any]


def first_reviews(n: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Reviews of the 8 subjects without repeated rows (preparation drops duplicates before the
    split): word order decides the label, so a bag of words says nothing about it."""
    return reviews(n, seed, SUBJECTS).drop_duplicates().reset_index(drop=True)


def shared_folder(tmp_path_factory: Any) -> Path:
    """This run's folder that every xdist worker sees (their base temps' parent); without xdist, the
    session's own base temp (its parent would outlive the run and serve an older release)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def text_release(folder: Path) -> TextRelease:
    """The release under `folder`, built by the first caller of this run; later callers (this
    worker's or another's) wait on the lock and read it. A half-built one is rebuilt."""
    root = folder / "text-cnn-release"
    done = root / "release.json"
    with open(folder / "text-cnn-release.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            data, workspace = root / "first.csv", root / "ws"
            first_reviews().to_csv(data, index=False)
            summary = run_quick(data, "verdict", workspace, SEED, "--dnn", "--budget", BUDGET)
            release = TextRelease(root=root, data=data, workspace=workspace, summary=summary)
            done.write_text(release.model_dump_json())  # written last: its presence means complete
    return TextRelease.model_validate_json(done.read_text())


def copy_workspace(release: TextRelease, to: Path) -> Path:
    """A private copy of the release's workspace, for a test that runs or predicts in it."""
    shutil.copytree(release.workspace, to)
    return to
