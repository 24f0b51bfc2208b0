"""Data-parallel training of the Keras network with Ray Train (torch backend under DDP): it
trains, checkpoints every epoch, resumes after a killed worker, and its weights load into the
driver's TensorFlow-backend copy of the same network."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ml_expert.tools.training.dnn import DNNConfig

EPOCHS = 3


def _train_workers() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_data_parallel_network_trains_checkpoints_and_resumes_after_a_killed_worker(
    ray_cluster: str, tmp_path: Path
) -> None:
    from ml_expert.execution.ray_train import ParallelSpec, train_data_parallel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 6)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("float32")
    config = DNNConfig(hidden_units=[16], batch_size=32, max_epochs=EPOCHS, patience=EPOCHS, dropout=0.0)
    spec = ParallelSpec(
        n_features=6, task="classification", n_outputs=2, config=config, seed=0, workers=2,
        storage=str(tmp_path / "storage"),
    )
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:  # kill -9 one training worker once an epoch's checkpoint is registered
        while not stop.is_set() and not killed:
            if any((tmp_path / "storage").rglob("checkpoint_manager_snapshot.json")):
                for pid in _train_workers()[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        weights, result = train_data_parallel(x[:180], y[:180], x[180:], y[180:], spec, name="net")
    finally:
        stop.set()
        thread.join()
    assert killed, "no training worker was seen"
    assert result.failures == 1 and result.starts[0]["resumed_from_epoch"] == 0
    assert result.starts[1]["resumed_from_epoch"] >= 1  # resumed from a stored epoch, not from zero
    assert result.epochs_trained == EPOCHS and len(result.history["val_loss"]) == EPOCHS
    assert result.best_val_loss == min(result.history["val_loss"])
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]  # it learns

    # the best weights load into the driver's TensorFlow-backend network: same loss on validation
    from ml_expert.tools.training.dnn import build_dnn

    model = build_dnn(6, "classification", 2, config, 0)
    model.set_weights(weights)
    probs = np.asarray(model.predict_on_batch(x[180:]))
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(60), y[180:].astype(int)], 1e-7, None))))
    assert abs(loss - result.best_val_loss) < 1e-4
