"""Shared plumbing of the benchmarks: child processes with their wall time and peak memory, the
machine description (cores, memory, load), and the raw-result files that report.py reads.

Every figure in RESULTS.md comes from a JSON file written here; nothing is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def work_dir() -> Path:
    """Scratch space for datasets, workspaces and predictions ($ML_EXPERT_BENCH_WORK overrides)."""
    return Path(os.environ.get("ML_EXPERT_BENCH_WORK") or ROOT / "benchmarks" / ".work")


def datasets_dir() -> Path:
    """`../shared/datasets` of the repository, or $ML_EXPERT_DATASETS, or /work/shared/datasets."""
    for candidate in (
        os.environ.get("ML_EXPERT_DATASETS"),
        ROOT.parent / "shared" / "datasets",
        ROOT.parent.parent / "shared" / "datasets",
        Path("/work/shared/datasets"),
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise SystemExit("no datasets folder found: set ML_EXPERT_DATASETS")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: this checkout's ml_expert first, TensorFlow quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.update(extra)
    return env


@dataclass
class ChildResult:
    returncode: int
    wall_seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    command: list[str]

    def check(self) -> ChildResult:
        if self.returncode != 0:
            raise RuntimeError(f"{shlex.join(self.command)} exited {self.returncode}:\n{self.stderr[-3000:]}")
        return self


def run_child(
    command: list[str],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> ChildResult:
    """Run `command`, returning its wall time and the peak RSS of the child (getrusage via wait4).

    ru_maxrss covers the child process itself (not grandchildren such as loky workers), which is
    the process that holds the data and the models in every system benchmarked here.
    """
    out_path = work_dir() / f"child-{os.getpid()}-{time.monotonic_ns()}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env or child_env(), cwd=cwd)
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    return ChildResult(proc.returncode, wall, usage.ru_maxrss / 1024, stdout, stderr, list(command))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What a reader needs to weigh a figure: CPU, cores, memory, Python, and the current load."""
    import psutil

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class Recorder:
    """Collects one benchmark's rows and writes `results/<name>.json` with the context around them."""

    def __init__(
        self, name: str, protocol: dict[str, Any], argv: list[str], script: str | None = None
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.command = f"python benchmarks/{script or name}.py {shlex.join(argv)}".strip()
        self.started = datetime.now(UTC)
        self.load_before = load_average()
        self.clock = time.perf_counter()

    def save(self, payload: dict[str, Any], out_dir: Path = RESULTS) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": self.name,
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "command": self.command,
            "protocol": self.protocol,
            "machine": machine(),
            "load_before": self.load_before,
            "load_after": load_average(),
            "seconds": round(time.perf_counter() - self.clock, 1),
            **payload,
        }
        path = out_dir / f"{self.name}.json"
        path.write_text(json.dumps(document, indent=2, default=_plain) + "\n")
        return path


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def ml_expert_command(*args: str) -> list[str]:
    """The CLI as a user runs it (`python -m ml_expert` is the `ml-expert` entry point)."""
    return [sys.executable, "-m", "ml_expert", *args]
