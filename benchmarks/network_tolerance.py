"""How far apart the same seeded network lands: the data-parallel worker loop on 1 and on 2 ranks,
and the in-process Keras `fit`, on tiny classification and regression tasks (not a timed test).

    python benchmarks/network_tolerance.py [--seeds 8] [--tasks classification regression] [--epochs 6]

The evidence behind the rule in ml_expert/execution/tolerance.py: classification compares validation
accuracy, regression the validation RMSE / std of the validation targets (unit-free; R² = 1 - its
square on the same rows). The worker loop (`run_worker`, the function every Ray Train worker runs) is
run without Ray: once in one process and once on 2 processes joined by torch's gloo process group
under DistributedDataParallel (what Ray Train's TorchTrainer sets up on CPUs), each with
KERAS_BACKEND=torch; then the same network is fitted in process with the TensorFlow backend
(`train_dnn`). Each on the tiny tasks of tests/test_ray_train.py, one per seed; regression targets go
to both trainers as z-scores of the training split, as the run's network path hands them
(`standardise_target`). Results: benchmarks/results/network_tolerance.json (another `--epochs`:
network_tolerance-e<epochs>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, Recorder  # noqa: E402

ROWS, TRAIN = 480, 360
CONFIG = {
    "hidden_units": [16], "batch_size": 32, "max_epochs": 6, "patience": 6, "dropout": 0.0,
    "learning_rate": 0.01,
}  # fmt: skip


def tiny(rows: int, seed: int) -> tuple[Any, Any]:
    """The tolerance test's task: a linear boundary in 6 features with 5 % flipped labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype("float32")
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).astype("float32")
    flip = rng.random(rows) < 0.05
    return x, np.where(flip, 1 - y, y).astype("float32")


def tiny_regression(rows: int, seed: int) -> tuple[Any, Any]:
    """The regression tolerance test's task: a linear signal in 6 features plus one product term and
    noise (R² at most about 0.9), in units far from 1 (x 1000 + 5000, as a price might be)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype("float32")
    signal = x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.5 * x[:, 3] * x[:, 4]
    return x, (5000 + 1000 * (signal + 0.5 * rng.normal(size=rows))).astype("float32")


TASKS = ("classification", "regression")
OUTPUTS = {"classification": 2, "regression": 1}


def task_data(task: str, seed: int) -> tuple[Any, Any, Any, Any]:
    """Training and validation arrays as the network path hands them to either trainer: regression
    targets as z-scores of the training split."""
    from ml_expert.tools.training.dnn import standardise_target

    if task == "classification":
        x, y = tiny(ROWS, seed)
        return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]
    x, y = tiny_regression(ROWS, seed)
    y_train, y_val, _, _ = standardise_target(y[:TRAIN], y[TRAIN:])
    return x[:TRAIN], y_train.astype("float32"), x[TRAIN:], y_val.astype("float32")


def _ranks(rank: int, world: int, tasks: list[str], seeds: int, out: str, port: int, config: dict) -> None:
    """One rank of the worker loop over every task and seed; rank 0 keeps each run's best weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from ml_expert.execution.ray_train import ParallelSpec, run_worker
    from ml_expert.tools.training.dnn import DNNConfig

    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    for task in tasks:
        for seed in range(seeds):
            spec = ParallelSpec(
                n_features=6, task=task, n_outputs=OUTPUTS[task], config=DNNConfig(**config), seed=seed,
                workers=world, storage=tempfile.mkdtemp(),
            )  # fmt: skip

            def report(
                metrics: dict[str, Any], folder: str | None, name: str = f"{task}-w{world}-s{seed}"
            ) -> None:
                if folder:
                    shutil.copy(Path(folder) / "best.npz", Path(out) / f"{name}.npz")

            wrap = DistributedDataParallel if world > 1 else (lambda model: model)
            run_worker(spec, task_data(task, seed), rank, world, None, report, wrap)
    if world > 1:
        dist.destroy_process_group()


def torch_phase(tasks: list[str], seeds: int, out: str, config: dict) -> None:
    import torch.multiprocessing as mp

    _ranks(0, 1, tasks, seeds, out, 0, config)
    mp.spawn(_ranks, args=(2, tasks, seeds, out, 29517, config), nprocs=2)


def _figure(task: str, weights: list, seed: int, x_val: Any, y_val: Any, config: dict) -> float:
    """The rule's figure (tolerance.network_figure) for the weights in the driver's
    (TensorFlow-backend) copy of the network."""
    import numpy as np

    from ml_expert.execution.tolerance import network_figure
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    model = build_dnn(6, task, OUTPUTS[task], DNNConfig(**config), seed)
    model.set_weights(weights)
    return network_figure(task, y_val, np.asarray(model.predict_on_batch(x_val)))


def keras_phase(tasks: list[str], seeds: int, out: str, settings: dict) -> dict[str, list[dict[str, Any]]]:
    import numpy as np

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    config = DNNConfig(**settings)
    rows: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        for seed in range(seeds):
            x_train, y_train, x_val, y_val = task_data(task, seed)
            row: dict[str, Any] = {"seed": seed}
            for world in (1, 2):
                weights = list(np.load(Path(out) / f"{task}-w{world}-s{seed}.npz").values())
                row[f"workers_{world}"] = _figure(task, weights, seed, x_val, y_val, settings)
            model = build_dnn(6, task, OUTPUTS[task], config, seed)
            folder = Path(tempfile.mkdtemp())
            train_dnn(model, x_train, y_train, x_val, y_val, config, folder, task=task)
            row["in_process"] = _figure(task, model.get_weights(), seed, x_val, y_val, settings)
            rows.setdefault(task, []).append(row)
    return rows


def largest_gaps(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "workers_1_vs_2": max(abs(r["workers_1"] - r["workers_2"]) for r in rows),
        "workers_2_vs_in_process": max(abs(r["workers_2"] - r["in_process"]) for r in rows),
        "workers_1_vs_in_process": max(abs(r["workers_1"] - r["in_process"]) for r in rows),
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=CONFIG["max_epochs"], help="max_epochs and patience")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--phase", choices=["torch", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = {**CONFIG, "max_epochs": args.epochs, "patience": args.epochs}
    if args.phase == "torch":
        torch_phase(args.tasks, args.seeds, args.out, config)
        return Path(args.out)
    if args.phase == "keras":
        print(json.dumps(keras_phase(args.tasks, args.seeds, args.out, config)))
        return Path(args.out)
    from ml_expert.execution.tolerance import FIGURE, tolerance_for

    name = "network_tolerance" if args.epochs == CONFIG["max_epochs"] else f"network_tolerance-e{args.epochs}"
    protocol = {"seeds": args.seeds, "tasks": args.tasks, "rows": ROWS, "train": TRAIN, **config}
    recorder = Recorder(name, protocol, sys.argv[1:] if argv is None else argv, script="network_tolerance")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    with tempfile.TemporaryDirectory() as out:
        base = [
            sys.executable,
            __file__,
            "--seeds",
            str(args.seeds),
            "--epochs",
            str(args.epochs),
            "--tasks",
            *args.tasks,
            "--out",
            out,
        ]
        subprocess.run([*base, "--phase", "torch"], env={**env, "KERAS_BACKEND": "torch"}, check=True)
        done = subprocess.run(
            [*base, "--phase", "keras"], env=env, check=True, capture_output=True, text=True
        )
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    tasks = {
        task: {
            "figure": FIGURE[task],
            "rows": rows[task],
            "largest_gaps": largest_gaps(rows[task]),
            "tolerance": tolerance_for(task),
        }
        for task in args.tasks
    }
    path = recorder.save({"tasks": tasks})
    print(json.dumps({task: doc["largest_gaps"] for task, doc in tasks.items()}))
    return path


if __name__ == "__main__":
    main()
