"""Create `benchmarks/.venv-autogluon`: AutoGluon pins an older pandas than ml-expert, so it lives apart.

Run `python benchmarks/autogluon_env.py` once (make bench does); the quality benchmark then runs
AutoGluon through that venv's python as a subprocess. The install log is kept beside the venv.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-autogluon"
PYTHON = VENV / "bin" / "python"
MARKER = VENV / ".installed"
# Every model family of presets="medium_quality": LightGBM, CatBoost, XGBoost, RF/XT, KNN and the torch
# networks (NN_TORCH, FASTAI); torch 2.13.0 is the CPU build.
REQUIREMENTS = ["autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3", "torch==2.13.0"]


def ensure(python: str = "python3") -> tuple[bool, str]:
    """Install AutoGluon if missing; returns (available, a short note for RESULTS.md)."""
    if MARKER.exists():
        return True, MARKER.read_text().strip()
    started = time.perf_counter()
    log = HERE / ".venv-autogluon.log"
    with log.open("w") as out:
        steps = [
            *([] if PYTHON.exists() else [[python, "-m", "venv", str(VENV)]]),
            [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
        ]
        for cmd in steps:
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                return False, f"`{' '.join(cmd[2:])}` failed; see {log.name}"
    size = sum(p.stat().st_size for p in VENV.rglob("*") if p.is_file()) / 2**20
    note = f"{' '.join(REQUIREMENTS)} installed in {time.perf_counter() - started:.0f} s, venv {size:.0f} MiB"
    MARKER.write_text(note + "\n")
    return True, note


if __name__ == "__main__":
    ok, message = ensure()
    print(message)
    sys.exit(0 if ok else 1)
