"""Data-parallel training of the Keras network with Ray Train (torch backend under DDP): it trains
within the stated tolerance of one process, its best weights load into the driver's
TensorFlow-backend copy of the same network, and the worker loop weighs and caps as `fit` does.
The killed worker (restart, resume from a stored epoch, the recorded cause) is checked through the
real CLI in tests/test_ray_cli.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ml_expert.tools.training.dnn import DNNConfig, cap_reason, class_sample_weights

REPO = Path(__file__).resolve().parents[1]


def _two_workers(config: DNNConfig, storage: Path, task: str = "classification"):
    """Two data-parallel workers on a 6-feature task (binary, or one regression output),
    checkpointing under `storage`."""
    from ml_expert.execution.ray_train import ParallelSpec

    return ParallelSpec(
        n_features=6,
        task=task,
        n_outputs=2 if task == "classification" else 1,
        config=config,
        seed=0,
        workers=2,
        storage=str(storage),
    )


def _tiny(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small learnable binary task with 5 % flipped labels (so no path scores a perfect 1.0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype("float32")
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).astype("float32")
    flip = rng.random(rows) < 0.05
    return x, np.where(flip, 1 - y, y).astype("float32")


def _val_accuracy(weights: list, config: DNNConfig, x_val: np.ndarray, y_val: np.ndarray) -> float:
    from ml_expert.tools.scoring import score
    from ml_expert.tools.training.dnn import build_dnn

    model = build_dnn(x_val.shape[1], "classification", 2, config, 0)
    model.set_weights(weights)
    return score("accuracy", y_val, np.asarray(model.predict_on_batch(x_val)))


def test_data_parallel_metric_is_within_the_stated_tolerance_of_one_process(
    ray_cluster: str, tmp_path: Path
) -> None:
    """The same seeded, class-weighted network on 2 data-parallel Ray Train workers and in this process
    (Keras `fit`, the one-machine path): validation accuracy within NETWORK_METRIC_TOLERANCE. The
    workers' run: every planned epoch under a cap that does not fire, its best weights the driver's
    network reloads with the same validation loss."""
    from ml_expert.execution.ray_train import HEALTH_CHECK_INTERVAL_S, train_data_parallel
    from ml_expert.execution.tolerance import NETWORK_METRIC_TOLERANCE
    from ml_expert.tools.training.dnn import build_dnn, train_dnn

    x, y = _tiny(480)
    x_train, y_train, x_val, y_val = x[:360], y[:360], x[360:], y[360:]
    config = DNNConfig(
        hidden_units=[16],
        batch_size=32,
        max_epochs=6,
        patience=6,
        dropout=0.0,
        learning_rate=0.01,
        class_weight={0: 1.0, 1: 1.5},  # the plan's class weights, on both paths
        time_limit_seconds=600.0,  # a cap that does not fire
    )
    spec = _two_workers(config, tmp_path / "ray")
    weights, result = train_data_parallel(x_train, y_train, x_val, y_val, spec, name="net")
    assert result.workers == 2 and result.failures == 0 and len(result.starts) == 1
    # the short controller poll reached the workers (Ray propagates it when fit() starts)
    assert result.starts[0]["controller_poll_s"] == HEALTH_CHECK_INTERVAL_S
    assert result.epochs_trained == 6 and len(result.history["val_loss"]) == 6
    assert result.best_val_loss == min(result.history["val_loss"])
    assert result.class_weighted and not result.cap_hit  # the cap's verdict crossed both ranks
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]  # it learns
    # the best weights load into the driver's TensorFlow-backend network: the same validation loss
    model = build_dnn(6, "classification", 2, config, 0)
    model.set_weights(weights)
    probs = np.asarray(model.predict_on_batch(x_val))
    rows = np.arange(len(y_val))
    loss = float(-np.mean(np.log(np.clip(probs[rows, y_val.astype(int)], 1e-7, None))))
    assert abs(loss - result.best_val_loss) < 1e-4
    parallel = _val_accuracy(weights, config, x_val, y_val)
    model = build_dnn(6, "classification", 2, config, 0)
    train_dnn(model, x_train, y_train, x_val, y_val, config, tmp_path / "here", task="classification")
    here = _val_accuracy(model.get_weights(), config, x_val, y_val)
    print(f"2 workers {parallel:.4f} ({result.seconds:.1f} s), one process {here:.4f}")
    # both learnt the task (chance is about 0.5; class 1 weighs 1.5, so on these balanced validation
    # rows both paths land near 0.80-0.83 where the unweighted network is above 0.8)
    assert min(parallel, here) > 0.75
    assert abs(parallel - here) <= NETWORK_METRIC_TOLERANCE


def _tiny_regression(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small learnable regression task (linear signal, one product term, noise: R² at most about
    0.9) in units far from 1 (x 1000 + 5000): benchmarks/network_tolerance.py's regression task."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype("float32")
    signal = x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.5 * x[:, 3] * x[:, 4]
    return x, (5000 + 1000 * (signal + 0.5 * rng.normal(size=rows))).astype("float32")


def test_data_parallel_regression_is_within_the_stated_tolerance_of_one_process(
    ray_cluster: str, tmp_path: Path
) -> None:
    """The regression twin: the same seeded network on 2 data-parallel Ray Train workers and in this
    process, on targets standardised as the run's network path does; validation RMSE / std of the
    validation targets within NETWORK_NRMSE_TOLERANCE (the rule in execution/tolerance.py)."""
    from ml_expert.execution.ray_train import train_data_parallel
    from ml_expert.execution.tolerance import NETWORK_NRMSE_TOLERANCE, network_figure, within_tolerance
    from ml_expert.tools.training.dnn import build_dnn, standardise_target, train_dnn

    x, y = _tiny_regression(480)
    y_train, y_val, mean, std = standardise_target(y[:360], y[360:])
    x_train, x_val = x[:360], x[360:]
    y_train, y_val = y_train.astype("float32"), y_val.astype("float32")
    config = DNNConfig(
        hidden_units=[16], batch_size=32, max_epochs=6, patience=6, dropout=0.0, learning_rate=0.01
    )
    spec = _two_workers(config, tmp_path / "ray", task="regression")
    weights, result = train_data_parallel(x_train, y_train, x_val, y_val, spec, name="net")
    model = build_dnn(6, "regression", 1, config, 0)
    model.set_weights(weights)
    parallel = np.asarray(model.predict_on_batch(x_val)).ravel()
    model = build_dnn(6, "regression", 1, config, 0)
    train_dnn(model, x_train, y_train, x_val, y_val, config, tmp_path / "here", task="regression")
    here = np.asarray(model.predict_on_batch(x_val)).ravel()
    figures = [network_figure("regression", y_val, p) for p in (parallel, here)]
    print(f"RMSE / std: 2 workers {figures[0]:.4f} ({result.seconds:.1f} s), one process {figures[1]:.4f}")
    assert max(figures) < 0.6  # both learnt the task: R² above 0.64
    assert abs(figures[0] - figures[1]) <= NETWORK_NRMSE_TOLERANCE
    assert within_tolerance("regression", y_val, parallel, here)
    # the verdict is the same in the target's own units (thousands): the figure has none
    in_units = [p * std + mean for p in (parallel, here)]
    assert within_tolerance("regression", y[360:], *in_units)
    assert abs(network_figure("regression", y[360:], in_units[0]) - figures[0]) < 1e-4


def test_the_tolerance_rule_passes_a_gap_just_inside_fails_one_just_outside_and_ignores_units() -> None:
    """execution/tolerance.py without a cluster: regression compares RMSE / std(validation targets),
    classification compares accuracy; a gap of 0.99 x the tolerance passes and 1.01 x fails, and
    scaling or shifting the target changes nothing (an absolute RMSE gap would grow 1000 times)."""
    from sklearn.metrics import r2_score

    from ml_expert.execution.tolerance import (
        NETWORK_METRIC_TOLERANCE,
        NETWORK_NRMSE_TOLERANCE,
        network_gap,
        normalised_rmse,
        tolerance_for,
        tolerance_statement,
        within_tolerance,
    )

    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    a = y + 0.4 * rng.normal(size=200)
    figure = normalised_rmse(y, a)
    assert abs(figure - np.sqrt(1 - r2_score(y, a))) < 1e-12  # sqrt(1 - R²) on the same rows
    tol = tolerance_for("regression")
    assert tol == NETWORK_NRMSE_TOLERANCE

    def with_figure(target: float) -> np.ndarray:  # a's errors scaled: RMSE / std moves linearly
        return y + (a - y) * (target / figure)

    inside, outside = with_figure(figure + 0.99 * tol), with_figure(figure + 1.01 * tol)
    assert abs(network_gap("regression", y, a, inside) - 0.99 * tol) < 1e-9
    for scale, shift in [(1.0, 0.0), (1000.0, 5000.0), (0.001, -3.0)]:
        ys, sa, si, so = (v * scale + shift for v in (y, a, inside, outside))
        assert within_tolerance("regression", ys, sa, si), scale
        assert not within_tolerance("regression", ys, sa, so), scale
        assert abs(network_gap("regression", ys, sa, si) - network_gap("regression", y, a, inside)) < 1e-9
    rmse = [float(np.sqrt(np.mean((p - y) ** 2))) for p in (a, inside)]
    assert abs(1000 * (rmse[1] - rmse[0])) > 1  # what an absolute RMSE gap would say in thousands
    with np.testing.assert_raises(ValueError):
        normalised_rmse(np.ones(5), np.zeros(5))  # no scale to measure in

    # classification: the absolute gap in accuracy on 200 rows, 9 rows (0.045) and 11 rows (0.055)
    labels = rng.integers(0, 2, size=200)
    probs = np.eye(2)[labels]
    wrong = lambda n: np.eye(2)[np.where(np.arange(200) < n, 1 - labels, labels)]  # noqa: E731
    assert tolerance_for("classification") == NETWORK_METRIC_TOLERANCE
    assert within_tolerance("classification", labels, probs, wrong(9))
    assert not within_tolerance("classification", labels, probs, wrong(11))
    assert "standard deviation" in tolerance_statement("regression") and "accuracy" in tolerance_statement(
        "classification"
    )
    with np.testing.assert_raises(ValueError):
        tolerance_for("clustering")


def test_class_weights_map_and_weigh_the_loss_as_keras_fit_does() -> None:
    import keras
    import torch
    from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

    from ml_expert.execution.ray_train import _loss

    y = np.array([0, 1, 2, 1, 0, 2, 2], dtype="float32")
    class_weight = {0: 0.5, 1: 2.0}  # class 2 is missing: weighs 1, as in Keras
    weights = class_sample_weights(y, class_weight)
    np.testing.assert_allclose(weights, class_weight_to_sample_weights(y, class_weight))
    assert class_sample_weights(y, None) is None
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=len(y)).astype("float32")
    keras_loss = keras.losses.SparseCategoricalCrossentropy()(y, probs, sample_weight=weights)
    ours = _loss(torch.as_tensor(probs), torch.as_tensor(y), "classification", torch.as_tensor(weights))
    assert abs(float(ours) - float(keras_loss)) < 1e-5


_WORKER = """
import json, sys
from pathlib import Path
import numpy as np
from ml_expert.execution.ray_train import ParallelSpec, run_worker
from ml_expert.tools.training.dnn import DNNConfig

storage = Path(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = (x[:, 0] > 0).astype("float32")
out = {}
runs = {  # learning rate 0: the weights stay put, so only the loss's weighting differs
    "plain": dict(learning_rate=0.0, max_epochs=1),
    "weighted": dict(learning_rate=0.0, max_epochs=1, class_weight={0: 3.0, 1: 3.0}),
    "capped": dict(max_epochs=5, patience=5, time_limit_seconds=0.0),
}
for name, settings in runs.items():
    config = DNNConfig(hidden_units=[8], batch_size=16, dropout=0.0, l2=0.0, **settings)
    folder = storage / name
    folder.mkdir(parents=True)
    spec = ParallelSpec(n_features=4, task="classification", n_outputs=2, config=config, seed=0,
                        workers=1, storage=str(folder))
    reports = []
    def report(metrics, checkpoint):
        reports.append({**metrics, "state": json.loads((Path(checkpoint) / "state.json").read_text())})
    run_worker(spec, (x[:48], y[:48], x[48:], y[48:]), 0, 1, None, report, lambda model: model)
    out[name] = reports
print(json.dumps(out))
"""


def test_the_worker_loop_weighs_the_loss_by_class_and_stops_at_the_wall_clock_cap(tmp_path: Path) -> None:
    """The function every Ray Train worker runs, in one process with the torch backend (no cluster)."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    plain, weighted, capped = runs["plain"][0], runs["weighted"][0], runs["capped"]
    assert abs(weighted["loss"] - 3 * plain["loss"]) < 1e-5 * plain["loss"]  # every row's loss x 3
    assert weighted["val_loss"] == plain["val_loss"]  # validation is unweighted, as in fit
    assert len(capped) == 1, "the cap stops after the first epoch, not at max_epochs=5"
    assert capped[0]["state"]["cap_hit"] is True
    assert capped[0]["state"]["stopped_reason"] == cap_reason(0.0)


def test_the_in_process_fit_stops_at_the_same_cap_with_the_same_reason(tmp_path: Path) -> None:
    """The cap the workers use is the callback `train_dnn` uses: lifted out of it, still firing there."""
    from ml_expert.tools.training.dnn import build_dnn, train_dnn

    x, y = _tiny(96)
    config = DNNConfig(hidden_units=[8], max_epochs=5, patience=5, time_limit_seconds=0.0)
    model = build_dnn(6, "classification", 2, config, 0)
    result = train_dnn(model, x[:64], y[:64], x[64:], y[64:], config, tmp_path, task="classification")
    assert result.cap_hit and result.epochs_trained == 1
    assert result.stopped_reason == cap_reason(0.0)


def test_the_controller_poll_is_shortened_for_one_fit_unless_the_user_set_it(monkeypatch) -> None:
    from ml_expert.execution.ray_train import (
        HEALTH_CHECK_ENV,
        HEALTH_CHECK_INTERVAL_S,
        controller_poll_interval,
    )

    monkeypatch.delenv(HEALTH_CHECK_ENV, raising=False)
    with controller_poll_interval():
        assert os.environ[HEALTH_CHECK_ENV] == HEALTH_CHECK_INTERVAL_S
    assert HEALTH_CHECK_ENV not in os.environ  # restored: nothing leaks into the user's process
    monkeypatch.setenv(HEALTH_CHECK_ENV, "1.5")
    with controller_poll_interval():
        assert os.environ[HEALTH_CHECK_ENV] == "1.5"  # the user's own setting wins
    assert os.environ[HEALTH_CHECK_ENV] == "1.5"
