"""How far apart the same seeded network's validation accuracy lands: the data-parallel worker loop on
1 and on 2 ranks, and the in-process Keras `fit` (not a timed test).

    python benchmarks/network_tolerance.py [--seeds 8]

The evidence behind `NETWORK_METRIC_TOLERANCE` (ml_expert/execution/ray_train.py). The worker loop
(`run_worker`, the function every Ray Train worker runs) is run without Ray: once in one process
and once on 2 processes joined by torch's gloo process group under DistributedDataParallel (what
Ray Train's TorchTrainer sets up on CPUs), each with KERAS_BACKEND=torch; then the same network is
fitted in process with the TensorFlow backend (`train_dnn`). Each on the tiny tasks of
tests/test_ray_train.py, one per seed. Results: benchmarks/results/network_tolerance.json.
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


def _ranks(rank: int, world: int, seeds: int, out: str, port: int) -> None:
    """One rank of the worker loop over every seed; rank 0 keeps each run's best weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from ml_expert.execution.ray_train import ParallelSpec, run_worker
    from ml_expert.tools.training.dnn import DNNConfig

    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    for seed in range(seeds):
        x, y = tiny(ROWS, seed)
        spec = ParallelSpec(
            n_features=6, task="classification", n_outputs=2, config=DNNConfig(**CONFIG), seed=seed,
            workers=world, storage=tempfile.mkdtemp(),
        )  # fmt: skip

        def report(metrics: dict[str, Any], folder: str | None, seed: int = seed) -> None:
            if folder:
                shutil.copy(Path(folder) / "best.npz", Path(out) / f"w{world}-s{seed}.npz")

        wrap = DistributedDataParallel if world > 1 else (lambda model: model)
        run_worker(spec, (x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]), rank, world, None, report, wrap)
    if world > 1:
        dist.destroy_process_group()


def torch_phase(seeds: int, out: str) -> None:
    import torch.multiprocessing as mp

    _ranks(0, 1, seeds, out, 0)
    mp.spawn(_ranks, args=(2, seeds, out, 29517), nprocs=2)


def _accuracy(weights: list, seed: int, x_val: Any, y_val: Any) -> float:
    """Validation accuracy of the weights in the driver's (TensorFlow-backend) copy of the network."""
    import numpy as np

    from ml_expert.tools.scoring import score
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    model = build_dnn(6, "classification", 2, DNNConfig(**CONFIG), seed)
    model.set_weights(weights)
    return score("accuracy", y_val, np.asarray(model.predict_on_batch(x_val)))


def keras_phase(seeds: int, out: str) -> list[dict[str, Any]]:
    import numpy as np

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    config = DNNConfig(**CONFIG)
    rows = []
    for seed in range(seeds):
        x, y = tiny(ROWS, seed)
        x_val, y_val = x[TRAIN:], y[TRAIN:]
        row: dict[str, Any] = {"seed": seed}
        for world in (1, 2):
            weights = list(np.load(Path(out) / f"w{world}-s{seed}.npz").values())
            row[f"workers_{world}"] = _accuracy(weights, seed, x_val, y_val)
        model = build_dnn(6, "classification", 2, config, seed)
        folder = Path(tempfile.mkdtemp())
        train_dnn(model, x[:TRAIN], y[:TRAIN], x_val, y_val, config, folder, task="classification")
        row["in_process"] = _accuracy(model.get_weights(), seed, x_val, y_val)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--phase", choices=["torch", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase == "torch":
        torch_phase(args.seeds, args.out)
        return Path(args.out)
    if args.phase == "keras":
        print(json.dumps(keras_phase(args.seeds, args.out)))
        return Path(args.out)
    from ml_expert.execution.ray_train import NETWORK_METRIC_TOLERANCE

    recorder = Recorder("network_tolerance", {"seeds": args.seeds, "rows": ROWS, "train": TRAIN, **CONFIG},
                        sys.argv[1:] if argv is None else argv)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    with tempfile.TemporaryDirectory() as out:
        base = [sys.executable, __file__, "--seeds", str(args.seeds), "--out", out, "--phase"]
        subprocess.run([*base, "torch"], env={**env, "KERAS_BACKEND": "torch"}, check=True)
        done = subprocess.run([*base, "keras"], env=env, check=True, capture_output=True, text=True)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    gaps = {
        "workers_1_vs_2": max(abs(r["workers_1"] - r["workers_2"]) for r in rows),
        "workers_2_vs_in_process": max(abs(r["workers_2"] - r["in_process"]) for r in rows),
        "workers_1_vs_in_process": max(abs(r["workers_1"] - r["in_process"]) for r in rows),
    }
    path = recorder.save({"rows": rows, "largest_gaps": gaps, "tolerance": NETWORK_METRIC_TOLERANCE})
    print(json.dumps(gaps))
    return path


if __name__ == "__main__":
    main()
