"""The commands that train nothing must not import TensorFlow, Keras or scikit-learn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("tensorflow", "keras", "sklearn", "torch", "jax", "langgraph")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["memory", "list", "--memory", "embedded"],
        ["status"],
        ["runs"],
        ["approve", "--help"],
        ["mcp", "--help"],
        ["install-skill", "--help"],
        ["models", "list"],
        ["models", "show", "production"],
        ["serve", "--help"],
        ["drift", "--help"],
    ],
)
def test_light_commands_import_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ml_expert", *args, "--workspace", str(tmp_path)]
        if args[0] in ("memory", "status", "runs", "models")
        else [sys.executable, "-X", "importtime", "-m", "ml_expert", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    if args == ["--help"]:
        assert proc.returncode == 0
        assert "Exit codes" in proc.stdout
