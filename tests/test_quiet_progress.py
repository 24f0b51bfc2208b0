"""A person at a terminal sees ml-expert's progress, not TensorFlow's warnings: what libraries
print to stderr (retracing warnings, converter logs) goes to the run's run.log instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path

from ml_expert.cli.run import drive_and_report
from ml_expert.runner import RunResult


def call(progress):
    import keras
    import numpy as np
    import tensorflow as tf

    progress({"event": "phase", "phase": "training", "agent": "ml-developer", "status": "started"})
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for n in range(1, 8):  # new shapes and new functions: TensorFlow warns about retracing
        model.predict(np.zeros((n, 3), "float32"), verbose=0)
        tf.function(lambda x: x * 2)(tf.zeros((n,)))
    return RunResult(ok=True, run_id="r", run_dir=sys.argv[1], status="finished")


drive_and_report(call, False, Path(sys.argv[1]))
"""


def test_library_warnings_go_to_the_run_log(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training" in proc.stderr  # the progress is still shown
    assert "retracing" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    assert "retracing" in (run_dir / "run.log").read_text()
