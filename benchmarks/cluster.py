"""The search on a two-node Ray cluster on this one machine (not a timed test).

    python benchmarks/cluster.py [--data breast_cancer.csv] [--model hist_gradient_boosting] [--trials 8]
                                 [--network-data caravan.csv] [--epochs 10]

Starts a head node (`ray start --head --num-cpus 1 --port 6380 --temp-dir DIR`), runs the same
seeded hyperparameter search (N trials x 3 folds, each trial one Ray task) on it, adds a second
node (`ray start --address 127.0.0.1:6380 --num-cpus 1`), runs it again on both, then once more
while a worker of the second node is `kill -9`'d mid-search, and records: wall seconds, tasks per
node, whether every trial's score is the same, and the time from the kill to the loss being seen
and to the retried trial's result. Then, on the two nodes, the Keras network data-parallel
(Ray Train, torch under DDP) on 1 worker and on 2 (one per node), and on 2 with Ray Train's own
2-s controller poll instead of ml-expert's 0.2 s (`RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`, which a user
may set). Every Ray process it started (found by its temp dir) is stopped at the end.
Results: benchmarks/results/cluster.json (then `python benchmarks/report.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Recorder, datasets_dir  # noqa: E402

PORT = 6380
ADDRESS = f"127.0.0.1:{PORT}"


def ray_cli(*args: str, env: dict[str, str]) -> None:
    ray = Path(sys.executable).with_name("ray")
    command = ["nice", "-n", "10", str(ray), *args]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=300)


def our_processes(temp_dir: str) -> list[int]:
    """Every process whose command line names our temp dir (the nodes' daemons), and their workers."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if temp_dir.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def raylets(temp_dir: str) -> list[int]:
    out = []
    for pid in our_processes(temp_dir):
        with contextlib.suppress(OSError):
            if b"/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                out.append(pid)
    return out


def raylet_of_second_node(temp_dir: str, head_raylet: int) -> int | None:
    others = [p for p in raylets(temp_dir) if p != head_raylet]
    return others[0] if others else None


def search(executor: Any, data: tuple[Any, Any], schema: Any, model: str, trials: int) -> dict[str, Any]:
    from ml_expert.tools.selection.tuning import TrialPlan, tune

    before = dict(executor.report.tasks_per_node)
    retries_before = len(executor.report.retries)
    plan = TrialPlan(name=model, trials=trials, nominal_fit_seconds=0, share_seconds=0, rule="fixed")
    started = time.perf_counter()
    result = tune(model, schema, data, "accuracy", 0, plan, map_fn=executor.map)
    wall = time.perf_counter() - started
    per_node = {k: v - before.get(k, 0) for k, v in executor.report.tasks_per_node.items()}
    return {
        "wall_seconds": round(wall, 2),
        "tasks_per_node": {k: v for k, v in per_node.items() if v},
        "trial_scores": [t.cv_score for t in result.trials],
        "best_index": result.best_index,
        "retries": [r.model_dump() for r in executor.report.retries[retries_before:]],
    }


def network_arrays(name: str) -> tuple[Any, ...]:
    """The numeric columns z-scored, a seeded 80/20 split; the label as class ids."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(datasets_dir() / name)
    y = pd.factorize(frame.pop("target"), sort=True)[0]
    x = frame.select_dtypes("number").to_numpy(dtype="float32")
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * 0.8)
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    x = (x - mean) / std
    return x[train], y[train], x[val], y[val], int(y.max()) + 1


def network(
    arrays: tuple[Any, ...], workers: int, epochs: int, storage: Path, poll: str | None
) -> dict[str, Any]:
    """One data-parallel fit; `poll` sets the controller's interval as a user would (None: ml-expert's)."""
    from ml_expert.execution.ray_train import HEALTH_CHECK_ENV, ParallelSpec, train_data_parallel
    from ml_expert.tools.training.dnn import DNNConfig

    x_train, y_train, x_val, y_val, classes = arrays
    config = DNNConfig(max_epochs=epochs, patience=epochs)
    spec = ParallelSpec(n_features=x_train.shape[1], task="classification", n_outputs=classes,
                        config=config, seed=0, workers=workers, storage=str(storage))  # fmt: skip
    users = os.environ.pop(HEALTH_CHECK_ENV, None)  # each row runs the poll it names
    if poll is not None:
        os.environ[HEALTH_CHECK_ENV] = poll
    try:
        started = time.perf_counter()
        _, result = train_data_parallel(x_train, y_train, x_val, y_val, spec, name=storage.name)
        wall = time.perf_counter() - started
    finally:
        os.environ.pop(HEALTH_CHECK_ENV, None)
        if users is not None:
            os.environ[HEALTH_CHECK_ENV] = users
    return {
        "workers": workers,
        "controller_poll_s": float(result.starts[0]["controller_poll_s"]),  # what the workers ran with
        "wall_seconds": round(wall, 2),
        "epochs": result.epochs_trained,
        "best_val_loss": round(result.best_val_loss, 4),
        "train_rows": len(x_train),
        "batch_size": config.batch_size,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="breast_cancer.csv")
    parser.add_argument("--model", default="hist_gradient_boosting")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--network-data", default="caravan.csv")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    recorder = Recorder("cluster", vars(args), argv if argv is not None else sys.argv[1:])
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    os.environ["RAY_AUTH_MODE"] = "token"
    temp_dir = tempfile.mkdtemp(prefix="mlx-cluster-")
    from ml_expert.tools.data.prepare import load_split, prepare_data

    prepared = prepare_data(str(datasets_dir() / args.data), "target", 0, Path(temp_dir) / "data")
    train = load_split(prepared.files, "train", prepared.input_schema, prepared.file_hashes)
    rows: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    notes: list[str] = []
    executor = None
    try:
        ray_cli("start", "--head", "--num-cpus", "1", "--port", str(PORT), "--temp-dir", temp_dir,
                "--include-dashboard=false", "--disable-usage-stats", env=env)  # fmt: skip
        from ml_expert.execution.ray_cluster import RayExecutor

        executor = RayExecutor(ADDRESS, max_retries=2)
        head_raylet = raylets(temp_dir)[0]
        search(executor, train, prepared.input_schema, args.model, 2)  # warm the head's worker
        one = search(executor, train, prepared.input_schema, args.model, args.trials)
        rows.append({"nodes": 1, "cpus": 1, **one})
        ray_cli("start", "--address", ADDRESS, "--num-cpus", "1", "--temp-dir", temp_dir,
                "--disable-usage-stats", env=env)  # fmt: skip
        import ray

        deadline = time.monotonic() + 120
        while sum(1 for n in ray.nodes() if n["Alive"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        search(executor, train, prepared.input_schema, args.model, 2)  # warm the second node's worker
        two = search(executor, train, prepared.input_schema, args.model, args.trials)
        rows.append({"nodes": 2, "cpus": 2, **two})
        second = raylet_of_second_node(temp_dir, head_raylet)
        killed: dict[str, Any] = {}

        def killer() -> None:  # kill -9 the first worker of the second node seen running a trial
            while not killed and second:
                for pid in children(second):
                    try:
                        running = Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_run_task")
                    except OSError:
                        continue
                    if running:
                        os.kill(pid, signal.SIGKILL)
                        killed.update(pid=pid, at=time.time())
                        return
                time.sleep(0.01)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        faulty = search(executor, train, prepared.input_schema, args.model, args.trials)
        thread.join(timeout=1)
        retry = next(iter(faulty["retries"]), None)
        faulty["kill"] = killed or None
        if killed and retry:
            faulty["seconds_kill_to_detected"] = round(retry["detected_at"] - killed["at"], 2)
            faulty["seconds_kill_to_retried_result"] = round((retry["recovered_at"] or 0) - killed["at"], 2)
        else:
            notes.append("the killer found no trial running on the second node: no fault was injected")
        rows.append({"nodes": 2, "cpus": 2, "fault": "kill -9 of a worker on node 2", **faulty})
        arrays = network_arrays(args.network_data)
        for workers, poll in ((1, None), (2, None), (2, "2.0")):
            folder = Path(temp_dir) / f"network-{workers}-{poll or 'ours'}"
            networks.append(network(arrays, workers, args.epochs, folder, poll))
    finally:
        if executor is not None:
            executor.close()  # disconnect before the nodes go
        for pid in our_processes(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while our_processes(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in our_processes(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while our_processes(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
    same = len({tuple(r["trial_scores"]) for r in rows}) == 1
    speedup = rows[0]["wall_seconds"] / rows[1]["wall_seconds"] if len(rows) > 1 else None
    notes += [
        "One machine with 2 cores shared by other work: the two nodes share the same 2 cores, so the "
        "1-vs-2-node ratio measures task spreading and overhead, not what two machines would give.",
        "Not shown here: the >=3x target with 4 workers on a 16+-core machine (this machine has 2 cores); "
        "the network's 2 workers share the same 2 cores as the driver and the nodes' daemons.",
    ]
    path = recorder.save({"rows": rows, "same_scores_everywhere": same, "speedup_2_vs_1": speedup,
                          "networks": networks, "notes": notes,
                          "left_running": our_processes(temp_dir)})  # fmt: skip
    shutil.rmtree(temp_dir, ignore_errors=True)
    print(path)


if __name__ == "__main__":
    main()
