"""Independent fits on a real Ray cluster: the same decisions as in one process, a killed worker
retried and recorded, every wait bounded, clear errors for a cluster that is not there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_helpers import CLI, run_quick

from ml_expert.errors import TrainingError
from ml_expert.tools.selection.candidates import BASELINES

WINE = Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "wine.csv"
FLAGS = ("--tune",)  # baselines + a search of the best one's hyperparameters, at run_quick's 60-s budget


def _record(run_dir: str) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "run.json").read_text())


def _outcome(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where the fits ran: the choice, the test metrics, the search, the
    decisions (less the two that say where the fits ran)."""
    record = _record(summary["run_dir"])
    selection = json.loads((Path(summary["run_dir"]) / "findings" / "model-selection.json").read_text())
    return {
        "chosen": summary["chosen_model"],
        "test": summary["metrics"],
        "leaderboard": [(c["name"], c["val_score"], c["train_score"]) for c in selection["leaderboard"]],
        "trials": [(t["index"], t["params"], t["cv_score"]) for t in selection["tuning"]["trials"]],
        "decisions": [
            d["decision"]
            for d in record["decisions"]
            if not d["decision"].startswith(("run the independent fits", "plan the search at"))
        ],
    }


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same seeded run with no cluster: the reference."""
    ws = tmp_path_factory.mktemp("ws-local")
    return _outcome(run_quick(WINE, "target", ws, 0, *FLAGS))


def test_same_decisions_on_a_cluster_as_in_one_process(
    ray_cluster: str, in_process: dict[str, Any], tmp_path: Path
) -> None:
    summary = run_quick(WINE, "target", tmp_path, 0, *FLAGS, "--ray", ray_cluster)
    assert _outcome(summary) == in_process
    execution = _record(summary["run_dir"])["execution"]
    assert execution["mode"] == "ray" and execution["cluster"]["cpus"] == 2
    # every baseline (the kernel SVM among them when its plan let it join) and every trial ran on Ray
    baselines = {name for name, *_ in in_process["leaderboard"] if name in BASELINES}
    assert execution["tasks_done"] == len(baselines) + len(in_process["trials"])
    assert sum(execution["tasks_per_node"].values()) == execution["tasks_done"]
    # train/val frames and targets (and the CV fold ids on small data) went to the cluster once each
    selection = json.loads((Path(summary["run_dir"]) / "findings" / "model-selection.json").read_text())
    assert execution["data_puts"] == 4 + (selection["comparison"]["scheme"] == "cv")
    assert execution["retries"] == []
    report = (Path(summary["run_dir"]) / "evaluation_report.md").read_text()
    assert "## Where the fits ran" in report and "Retries (at most 2 per task): none." in report


def _task_workers() -> list[int]:
    """Ray worker processes of THIS session's cluster running one of our fits right now (their title
    is ray::<function>). Only descendants of this process: under `make test` the other pytest worker
    may run its own `--ray local` cluster at the same time (test_ray_cli), and killing one of its
    fits would leave this run without the retry the test expects (CI, stop 33)."""
    pids = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith("ray::_run_task"):
                pids.append(process.pid)
        except psutil.Error:
            continue
    return pids


def test_a_worker_killed_during_the_search_is_retried_with_the_same_result(
    ray_cluster: str, in_process: dict[str, Any], tmp_path: Path
) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:  # kill -9 the first worker seen running a fit, once
        while not stop.is_set() and not killed:
            for pid in _task_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        summary = run_quick(WINE, "target", tmp_path, 0, *FLAGS, "--ray", ray_cluster)
    finally:
        stop.set()
        thread.join()
    assert killed, "no fit was seen running on the cluster"
    assert _outcome(summary) == in_process  # nothing lost, nothing decided differently
    retries = _record(summary["run_dir"])["execution"]["retries"]
    assert len(retries) == 1 and retries[0]["attempt"] == 1
    assert "WorkerCrashedError" in retries[0]["cause"] or "died" in retries[0]["cause"].lower()
    report = (Path(summary["run_dir"]) / "evaluation_report.md").read_text()
    assert "Retries (at most 2 per task): 1." in report and retries[0]["cause"] in report


def test_a_task_that_dies_every_time_fails_after_bounded_retries(ray_cluster: str) -> None:
    from ml_expert.execution.ray_cluster import RayExecutor

    def always_dies(spec: int, shared: Any) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return spec

    executor = RayExecutor(ray_cluster, max_retries=1)
    with pytest.raises(TrainingError, match="failed 2 times"):
        executor.map(always_dies, [0], None, label="doomed")
    assert [r.attempt for r in executor.report.retries] == [1]


def test_every_wait_is_bounded(ray_cluster: str) -> None:
    from ml_expert.execution.ray_cluster import RayExecutor

    def slow(spec: float, shared: Any) -> float:
        time.sleep(spec)
        return spec

    executor = RayExecutor(ray_cluster, stall_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(TrainingError, match="no slow fits finished .* in 2 s"):
        executor.map(slow, [30.0], None, label="slow fits")
    assert time.monotonic() - started < 10
    # the safety stop: what is still running at time_limit is cancelled and given as None
    executor.stall_timeout = 120.0  # room for a fresh worker to start on a busy machine
    assert executor.map(slow, [0.0, 30.0], None, label="slow fits", time_limit=1.0) == [0.0, None]


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"), ("nowhere", "expected local, auto")],
)
def test_a_cluster_that_is_not_there_is_one_clear_usage_error(
    address: str, message: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [*CLI, "run", "iris", "--no-dnn", "--json", "--ray", address, "--workspace", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in json.loads(proc.stdout)["error"] and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 90
