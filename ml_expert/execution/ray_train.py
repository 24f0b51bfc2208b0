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
from the last one. As in one process, the plan's class weights weigh each training row's loss
(`class_sample_weights`, Keras's mapping) and the wall-clock cap is the in-process Keras callback
(`safety_stop`), its verdict agreed over the group so every worker stops at the same epoch.

The result is not bit-identical to one process; how close it must land, per task, is the rule in
execution/tolerance.py (`tolerance_for`, `within_tolerance`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import ray
from pydantic import BaseModel

from ml_expert.errors import TrainingError
from ml_expert.tools.training.dnn import DNNConfig, cap_reason

STARTS_FILE = "starts.jsonl"  # one line per (re)start of the worker group, written by rank 0
FAILURES_FILE = "failures.jsonl"  # one line per failure Ray Train saw, written by its controller
CAUSE_CHARS = 300  # how much of each failing rank's error a restart keeps
# Ray Train V2's controller polls its workers every 2 s by default, and a worker's report() waits for
# that poll once a few results are queued: a short epoch then costs 2 s, and a lost worker is seen
# up to 2 s late. 0.2 s cut one fit on tiny data from 35.7 s to about 21 s on 2 cores (RESULTS.md).
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
HEALTH_CHECK_INTERVAL_S = "0.2"


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
    cap_hit: bool = False  # the wall-clock cap stopped every worker at the same epoch
    class_weighted: bool = False  # the plan's class weights weighed each row's loss
    history: dict[str, list[float]]
    starts: list[dict[str, Any]]  # each start: the epoch it resumed from; a restart, the failure's cause
    failures: int
    seconds: float
    storage: str


def _failure_text(error: BaseException) -> str:
    """One line for a worker's error: its type and message, whitespace collapsed, cut to CAUSE_CHARS;
    a failed health check (the worker's process is gone) names the error underneath it."""
    inner = getattr(error, "health_check_failure", None)
    shown = inner if isinstance(inner, BaseException) else error
    text = f"{type(shown).__name__}: {' '.join(str(shown).split())}"
    if shown is not error:
        text = f"{type(error).__name__} ({text})"
    return text[:CAUSE_CHARS]


def _failure_recorder(storage: str) -> Any:
    """A Ray Train callback (it runs in the Train controller, not in a worker) that appends each
    failure it sees to `storage`/FAILURES_FILE: the ranks whose worker was lost (a failed health
    check: its process is gone), every failing rank's error, lost ones first (the others usually
    lost their peer in DDP's all-reduce). Built here so that Ray Train is imported only on this path."""
    import ray.train

    class FailureRecorder(ray.train.UserCallback):
        def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
            lost = sorted(r for r, e in worker_exceptions.items() if hasattr(e, "health_check_failure"))
            order = lost + sorted(set(worker_exceptions) - set(lost))
            line = {
                "time": time.time(),
                "lost_ranks": lost,
                "cause": "; ".join(f"rank {r}: {_failure_text(worker_exceptions[r])}" for r in order),
            }
            with open(Path(storage) / FAILURES_FILE, "a") as log:
                log.write(json.dumps(line) + "\n")

    return FailureRecorder()


def restart_causes(starts: list[dict[str, Any]], failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each start of the group; each restart with the failure before it: the lost ranks and the cause
    (the last failure recorded before the restart; "unknown" when none was)."""
    out = [dict(starts[0])] if starts else []
    for start in starts[1:]:
        seen = [f for f in failures if f["time"] <= start["time"]]
        last = seen[-1] if seen else {"lost_ranks": [], "cause": "unknown"}
        out.append({**start, "lost_ranks": last["lost_ranks"], "cause": last["cause"]})
    return out


def _train_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: its rank, the data from the object store and the last checkpoint, then
    `run_worker`; rank 0 reports each epoch's checkpoint, the others only their figures."""
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    # `keras.utils.set_random_seed` imports TensorFlow, when installed, only to seed it; this worker
    # never uses it, and the import cost each (re)start of the group about 1.5-2 s on 2 idle cores
    sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    import ray.train
    import ray.train.torch

    spec = ParallelSpec.model_validate(loop_config["spec"])
    context = ray.train.get_context()
    rank = context.get_world_rank()

    def report(metrics: dict[str, Any], folder: str | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint)

    data = ray.get(loop_config["data"])
    world = context.get_world_size()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        run_worker(spec, data, rank, world, None, report, ray.train.torch.prepare_model)
        return
    with checkpoint.as_directory() as folder:  # a restarted group: resume from the last reported epoch
        run_worker(spec, data, rank, world, Path(folder), report, ray.train.torch.prepare_model)


def _loss(out: Any, y: Any, task: str, weights: Any = None) -> Any:
    """Keras's loss for the task (sparse categorical cross-entropy on the softmax output, or MSE),
    each row times its class weight when given, averaged over the batch ("sum_over_batch_size"):
    what `fit(class_weight=...)` minimises in one process. Validation is unweighted, as in `fit`."""
    import torch

    if task == "classification":
        per_row = torch.nn.functional.nll_loss(torch.log(out.clamp_min(1e-7)), y.long(), reduction="none")
    else:
        per_row = (out.reshape(-1) - y.float()) ** 2
    return (per_row * weights).mean() if weights is not None else per_row.mean()


def _any_rank(flag: bool, device: Any) -> bool:
    """True on every rank when it is true on one: each worker reads its own clock, and a worker that
    stopped alone would leave the others waiting in DDP's all-reduce."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def end_epoch(
    state: dict[str, Any],
    val_loss: float,
    patience: int,
    max_epochs: int,
    time_limit: float | None,
    cap_hit: bool,
) -> bool:
    """After an epoch: best weights, patience, the stop decision and its reason, in the in-process
    path's order (early stopping, then the wall-clock cap, then the planned epochs). Every rank calls
    it with the same figures (the same weights, the full validation set, the cap agreed over the
    group), so every rank stops at the same epoch. Returns True to stop."""
    state["epoch"] += 1
    state["history"].setdefault("val_loss", []).append(val_loss)
    if val_loss < state["best_val_loss"]:
        state.update(best_val_loss=val_loss, best_epoch=state["epoch"], wait=0)
    else:
        state["wait"] += 1
    early = state["wait"] >= patience
    state["cap_hit"] = cap_hit and not early
    if early:
        state["stopped_reason"] = f"early stopping: no val_loss improvement for {patience} epochs"
    elif cap_hit:
        state["stopped_reason"] = cap_reason(time_limit)
    else:
        state["stopped_reason"] = f"reached the planned max_epochs={max_epochs}"
    return early or cap_hit


def run_worker(
    spec: ParallelSpec,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    rank: int,
    world: int,
    checkpoint: Path | None,
    report: Callable[[dict[str, Any], str | None], None],
    wrap: Callable[[Any], Any],
) -> None:
    """The training every worker runs, free of Ray (the caller passes the rank, the checkpoint folder,
    `report` and the DDP wrapper), so it can be checked in one process: its shard of the training
    rows with their class weights, the full validation set, the wall-clock cap as the in-process
    Keras callback, a checkpoint per epoch from rank 0."""
    import torch

    from ml_expert.tools.training.dnn import build_dnn, class_sample_weights, safety_stop

    x_train, y_train, x_val, y_val = data
    config = spec.config
    model = build_dnn(spec.n_features, spec.task, spec.n_outputs, config, spec.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    state: dict[str, Any] = {
        "epoch": 0,
        "best_val_loss": math.inf,
        "best_epoch": 0,
        "wait": 0,
        "history": {},
        "seconds": 0.0,
    }
    best_weights = model.get_weights()
    if checkpoint is not None:
        model.set_weights(list(np.load(checkpoint / "weights.npz").values()))
        best_weights = list(np.load(checkpoint / "best.npz").values())
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        state = {"seconds": 0.0, **json.loads((checkpoint / "state.json").read_text())}
    if rank == 0:
        with open(Path(spec.storage) / STARTS_FILE, "a") as log:
            poll = os.environ.get(HEALTH_CHECK_ENV)  # as Ray handed it to this worker (None without Ray)
            start = {"resumed_from_epoch": state["epoch"], "time": time.time(), "controller_poll_s": poll}
            log.write(json.dumps(start) + "\n")
    ddp = wrap(model)
    device = next(model.parameters()).device
    xs, ys = torch.as_tensor(x_train[rank::world]), torch.as_tensor(y_train[rank::world])
    weights = class_sample_weights(y_train[rank::world], config.class_weight)
    ws = torch.as_tensor(weights) if weights is not None else None
    xv = torch.as_tensor(x_val).to(device)
    yv = torch.as_tensor(y_val).to(device)
    batch = max(1, config.batch_size // world)  # the global batch stays the planned one
    cap = safety_stop(config.time_limit_seconds, spent=state["seconds"])  # restarts share one budget
    cap.set_model(model)
    cap.on_train_begin()

    for epoch in range(state["epoch"], config.max_epochs):
        order = torch.as_tensor(np.random.default_rng(spec.seed + epoch).permutation(len(xs)))
        ddp.train()
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            xb, yb = xs[rows].to(device), ys[rows].to(device)
            wb = ws[rows].to(device) if ws is not None else None
            optimizer.zero_grad()
            loss = _loss(ddp(xb, training=True), yb, spec.task, wb)
            if model.losses:
                loss = loss + sum(model.losses)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clipnorm)
            optimizer.step()
            total, seen = total + float(loss.detach()) * len(rows), seen + len(rows)
        ddp.eval()
        with torch.no_grad():
            val_loss = float(_loss(model(xv, training=False), yv, spec.task))
        state["history"].setdefault("loss", []).append(total / max(seen, 1))
        cap.on_epoch_end(epoch)
        state["seconds"] = cap.elapsed()
        improved = val_loss < state["best_val_loss"]  # every rank sees the same weights: the same decision
        stop = end_epoch(
            state,
            val_loss,
            config.patience,
            config.max_epochs,
            config.time_limit_seconds,
            _any_rank(cap.hit, device),
        )
        if improved:
            best_weights = model.get_weights()
        metrics = {"epoch": epoch + 1, "loss": state["history"]["loss"][-1], "val_loss": val_loss}
        if rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                np.savez(Path(folder) / "weights.npz", *model.get_weights())
                np.savez(Path(folder) / "best.npz", *best_weights)
                torch.save(optimizer.state_dict(), Path(folder) / "optimizer.pt")
                (Path(folder) / "state.json").write_text(json.dumps(state))
                report(metrics, folder)
        else:
            report(metrics, None)
        if stop:
            break


@contextmanager
def controller_poll_interval(seconds: str = HEALTH_CHECK_INTERVAL_S) -> Iterator[None]:
    """Set the Train controller's poll interval for one fit, unless the user set their own: Ray
    propagates the variable to the controller and workers when `fit()` starts, not later."""
    if HEALTH_CHECK_ENV in os.environ:
        yield
        return
    os.environ[HEALTH_CHECK_ENV] = seconds
    try:
        yield
    finally:
        os.environ.pop(HEALTH_CHECK_ENV, None)


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
            callbacks=[_failure_recorder(str(storage.resolve()))],
        ),
    )
    try:
        with controller_poll_interval():
            result = trainer.fit()
    except Exception as exc:  # WorkerGroupError / TrainingFailedError after max_failures
        raise TrainingError(f"data-parallel training failed after {max_failures} restarts: {exc}") from None
    if result.checkpoint is None:
        raise TrainingError("data-parallel training reported no checkpoint")
    with result.checkpoint.as_directory() as folder:
        weights = list(np.load(Path(folder) / "best.npz").values())
        state = json.loads((Path(folder) / "state.json").read_text())
    starts = [json.loads(line) for line in (storage / STARTS_FILE).read_text().splitlines()]
    failures_log = storage / FAILURES_FILE
    failures = (
        [json.loads(line) for line in failures_log.read_text().splitlines()] if failures_log.exists() else []
    )
    return weights, ParallelResult(
        workers=spec.workers,
        backend="torch DDP (Keras 3, KERAS_BACKEND=torch) via Ray Train TorchTrainer",
        epochs_trained=state["epoch"],
        best_epoch=state["best_epoch"],
        best_val_loss=state["best_val_loss"],
        stopped_reason=state["stopped_reason"],
        cap_hit=bool(state.get("cap_hit")),
        class_weighted=bool(spec.config.class_weight),
        history=state["history"],
        starts=restart_causes(starts, failures),
        failures=len(starts) - 1,
        seconds=round(time.perf_counter() - started, 3),
        storage=str(storage),
    )
