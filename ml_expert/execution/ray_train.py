"""Data-parallel training of the Keras network with Ray Train: the torch backend under DDP.

Why torch: Keras 3 + tf.distribute.MultiWorkerMirroredStrategy fails with these pins (keras#20585,
ray#47464, see STACK.md); the two supported multi-device paths are JAX's DataParallel and the torch
backend under DistributedDataParallel. torch 2.13 (CPU) installs here and Ray Train's TorchTrainer
sets up the process group (gloo on CPU, NCCL on GPUs) and wraps the model, so each worker runs a
Keras model (a torch.nn.Module under KERAS_BACKEND=torch) in a plain torch loop. The weights come
back as arrays in layer order and load into the driver's (TensorFlow-backend) copy of the same
architecture: export and serving do not change.

Each epoch rank 0 reports a checkpoint (weights, best weights, optimizer state, history) to
storage every worker reaches; after a lost worker (FailureConfig, bounded) the new group resumes
from the last one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from pydantic import BaseModel

from ml_expert.errors import TrainingError
from ml_expert.tools.training.dnn import DNNConfig

STARTS_FILE = "starts.jsonl"  # one line per (re)start of the worker group, written by rank 0


class ParallelSpec(BaseModel):
    n_features: int
    task: str
    n_outputs: int
    config: DNNConfig
    seed: int
    workers: int
    storage: str  # the run's folder for this training under the shared storage


class ParallelResult(BaseModel):
    workers: int
    backend: str
    epochs_trained: int
    best_epoch: int
    best_val_loss: float
    stopped_reason: str
    history: dict[str, list[float]]
    starts: list[dict[str, Any]]  # each start of the group: the epoch it resumed from
    failures: int
    seconds: float
    storage: str


def _train_loop(loop_config: dict[str, Any]) -> None:
    """One worker: its shard of the training rows, the full validation set, a checkpoint per epoch."""
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import ray.train
    import ray.train.torch
    import torch

    from ml_expert.tools.training.dnn import build_dnn

    spec = ParallelSpec.model_validate(loop_config["spec"])
    x_train, y_train, x_val, y_val = ray.get(loop_config["data"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    config = spec.config
    model = build_dnn(spec.n_features, spec.task, spec.n_outputs, config, spec.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    state: dict[str, Any] = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "wait": 0, "history": {}}
    best_weights = model.get_weights()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # a restarted group: pick up where the last reported epoch left off
        with checkpoint.as_directory() as folder:
            model.set_weights(list(np.load(Path(folder) / "weights.npz").values()))
            best_weights = list(np.load(Path(folder) / "best.npz").values())
            optimizer.load_state_dict(torch.load(Path(folder) / "optimizer.pt", weights_only=True))
            state = json.loads((Path(folder) / "state.json").read_text())
    if rank == 0:
        with open(Path(spec.storage) / STARTS_FILE, "a") as log:
            log.write(json.dumps({"resumed_from_epoch": state["epoch"], "time": time.time()}) + "\n")
    ddp = ray.train.torch.prepare_model(model)
    device = next(model.parameters()).device
    classify = spec.task == "classification"
    xs, ys = torch.as_tensor(x_train[rank::world]), torch.as_tensor(y_train[rank::world])
    xv = torch.as_tensor(x_val).to(device)
    yv = torch.as_tensor(y_val).to(device)
    batch = max(1, config.batch_size // world)  # the global batch stays the planned one

    def loss_of(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if classify:
            return torch.nn.functional.nll_loss(torch.log(out.clamp_min(1e-7)), y.long())
        return torch.nn.functional.mse_loss(out.reshape(-1), y.float())

    for epoch in range(state["epoch"], config.max_epochs):
        order = torch.as_tensor(np.random.default_rng(spec.seed + epoch).permutation(len(xs)))
        ddp.train()
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            xb, yb = xs[rows].to(device), ys[rows].to(device)
            optimizer.zero_grad()
            out = ddp(xb, training=True)
            loss = loss_of(out, yb) + sum(model.losses) if model.losses else loss_of(out, yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clipnorm)
            optimizer.step()
            total, seen = total + float(loss) * len(rows), seen + len(rows)
        ddp.eval()
        with torch.no_grad():
            val_loss = float(loss_of(model(xv, training=False), yv))
        state["history"].setdefault("loss", []).append(total / max(seen, 1))
        state["history"].setdefault("val_loss", []).append(val_loss)
        state["epoch"] = epoch + 1
        if val_loss < state["best_val_loss"]:  # every rank sees the same weights: the same decision
            state.update(best_val_loss=val_loss, best_epoch=epoch + 1, wait=0)
            best_weights = model.get_weights()
        else:
            state["wait"] += 1
        stop = state["wait"] >= config.patience
        state["stopped_reason"] = (
            f"early stopping: no val_loss improvement for {config.patience} epochs"
            if stop
            else f"reached the planned max_epochs={config.max_epochs}"
        )
        metrics = {"epoch": epoch + 1, "loss": state["history"]["loss"][-1], "val_loss": val_loss}
        if rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                np.savez(Path(folder) / "weights.npz", *model.get_weights())
                np.savez(Path(folder) / "best.npz", *best_weights)
                torch.save(optimizer.state_dict(), Path(folder) / "optimizer.pt")
                (Path(folder) / "state.json").write_text(json.dumps(state))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)
        if stop:
            break


def train_data_parallel(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    spec: ParallelSpec,
    *,
    name: str,
    max_failures: int = 2,
    use_gpu: bool = False,
) -> tuple[list[np.ndarray], ParallelResult]:
    """Train on `spec.workers` Ray Train workers; returns the best weights (layer order) and what
    happened. A rerun with the same name and storage resumes from the last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = Path(spec.storage)
    storage.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "spec": spec.model_dump(),
            "data": ray.put((x_train, y_train, x_val, y_val)),  # once, for every worker and restart
        },
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env={"env_vars": {"KERAS_BACKEND": "torch"}},
        ),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # WorkerGroupError / TrainingFailedError after max_failures
        raise TrainingError(f"data-parallel training failed after {max_failures} restarts: {exc}") from None
    if result.checkpoint is None:
        raise TrainingError("data-parallel training reported no checkpoint")
    with result.checkpoint.as_directory() as folder:
        weights = list(np.load(Path(folder) / "best.npz").values())
        state = json.loads((Path(folder) / "state.json").read_text())
    starts = [json.loads(line) for line in (storage / STARTS_FILE).read_text().splitlines()]
    return weights, ParallelResult(
        workers=spec.workers,
        backend="torch DDP (Keras 3, KERAS_BACKEND=torch) via Ray Train TorchTrainer",
        epochs_trained=state["epoch"],
        best_epoch=state["best_epoch"],
        best_val_loss=state["best_val_loss"],
        stopped_reason=state["stopped_reason"],
        history=state["history"],
        starts=starts,
        failures=len(starts) - 1,
        seconds=round(time.perf_counter() - started, 3),
        storage=str(storage),
    )
