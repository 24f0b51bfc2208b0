"""Recovery in training: divergence routed back by the graph, out-of-memory, corrupt checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml_expert import run
from ml_expert.errors import IntegrityError
from ml_expert.tools.selection.fold_bag import BAG_FOLDS, BAGGED


def test_divergence_is_retried_by_the_graph_with_lower_learning_rates(
    datasets: Path, workspace: Path
) -> None:
    # An absurd learning rate: 10 and then 1 explode on this regression, 0.1 trains.
    result = run(
        str(datasets / "diabetes.csv"),
        seed=5,
        budget=60,
        workspace=workspace,
        memory="embedded",
        dnn_learning_rate=10.0,
    )
    assert result.ok, result.reason
    run_dir = Path(result.run_dir)
    finding = json.loads((run_dir / "findings" / "training.json").read_text())
    assert finding["attempt"] == 2  # two retries, no more
    assert finding["dnn"]["config"]["learning_rate"] == pytest.approx(0.1)
    assert finding["dnn"]["config"]["clipnorm"] == pytest.approx(0.25)
    assert not finding["dnn"]["diverged"]
    decisions = json.loads((run_dir / "run.json").read_text())["decisions"]
    retries = [d for d in decisions if d["decision"].startswith("retry training")]
    assert [r["reason"].split("at learning rate ")[1].split(";")[0] for r in retries] == ["10", "1"]
    gate = json.loads((run_dir / "findings" / "guardrails__training.json").read_text())
    assert gate["passed"]
    assert next(c for c in gate["checks"] if c["name"] == "retries")["value"] == 2
    # each attempt trained in its own directory, so no backup of a diverged attempt is reused
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "attempt-0",
        "attempt-1",
        "attempt-2",
    ]


def test_a_network_that_keeps_diverging_is_discarded_and_the_baseline_ships(
    datasets: Path, workspace: Path
) -> None:
    result = run(
        str(datasets / "diabetes.csv"),
        seed=5,
        budget=60,
        workspace=workspace,
        memory="embedded",
        dnn_learning_rate=1e4,
    )
    assert result.ok, result.reason
    assert result.chosen_model != "dnn"  # a baseline (or their ensemble) ships
    finding = json.loads((Path(result.run_dir) / "findings" / "training.json").read_text())
    assert finding["attempt"] == 2 and "dnn" not in finding
    diverged = finding["diverged_network"]
    assert diverged["diverged"] and diverged["discarded"].startswith("diverged on 3 attempts")
    assert diverged["config"]["learning_rate"] == pytest.approx(100.0)
    # the shipped baseline follows the bag rule: a boosted model as fold fits, anything else refit once
    refit = finding["chosen"]["refit"]
    if result.chosen_model == "ensemble":  # its boosted members as fold fits, the others refit once
        selection = json.loads((Path(result.run_dir) / "findings" / "model-selection.json").read_text())
        names = selection["ensemble"]["selection"]["names"]  # no --tune: each name is its family
        boosted = any(name in BAGGED for name in names)
        expected = [
            fit
            for name in names
            for fit in ([f"{name}_fold{i}" for i in range(BAG_FOLDS)] if name in BAGGED else [name])
        ]
        assert (sorted(refit["bag"]["members"]) if refit["bag"] else None) == (
            sorted(expected) if boosted else None
        )
    else:
        boosted = result.chosen_model in BAGGED
    assert refit["on"] == ("folds" if boosted else "train+val")
    # nothing of the network is exported
    exported = {
        Path(r["path"]).parent.name
        for r in json.loads((Path(result.run_dir) / "findings" / "deployment.json").read_text())["exports"]
    }
    assert exported == {result.chosen_model}


def _tiny_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    return x[:64], y[:64], x[64:], y[64:]


def test_out_of_memory_halves_the_batch_and_accumulates_gradients(tmp_path: Path) -> None:
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    class ResourceExhaustedError(RuntimeError):
        """Named like TensorFlow's: the check is by class name, backend-neutral."""

    config = DNNConfig(hidden_units=[8], batch_size=16, max_epochs=3, patience=3)
    model = build_dnn(6, "classification", 2, config, seed=1)
    real_fit = model.fit
    calls: list[int] = []

    def fit_failing_once(*args, **kwargs):
        calls.append(kwargs["batch_size"])
        if len(calls) == 1:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return real_fit(*args, **kwargs)

    model.fit = fit_failing_once
    result = train_dnn(model, *_tiny_data(), config, tmp_path, task="classification")
    assert calls == [16, 8]
    assert result.batch_size == 8 and result.gradient_accumulation_steps == 2
    assert model.optimizer.gradient_accumulation_steps == 2
    assert result.oom_retries == [
        {
            "error": "ResourceExhaustedError",
            "batch_size": 16,
            "new_batch_size": 8,
            "gradient_accumulation_steps": 2,
        }
    ]
    assert result.epochs_trained == 3 and not result.diverged


def test_a_corrupt_checkpoint_is_skipped_for_the_previous_good_one(tmp_path: Path) -> None:
    import keras

    from ml_expert.tools.training.checkpoints import load_verified
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    config = DNNConfig(hidden_units=[8], batch_size=16, max_epochs=4, patience=4, keep_last=2)
    model = build_dnn(6, "classification", 2, config, seed=1)
    result = train_dnn(model, *_tiny_data(), config, tmp_path, task="classification")
    records = result.checkpoints
    assert [r["kind"] for r in records] == ["best", "last", "last"]
    assert [r["epoch"] for r in records[1:]] == [4, 3]  # the last two kept, newest first
    assert sorted(p.name for p in tmp_path.glob("epoch-*.keras")) == ["epoch-0003.keras", "epoch-0004.keras"]
    manifest = json.loads((tmp_path / "checkpoints.json").read_text())
    assert manifest["best"]["sha256"] == records[0]["sha256"]

    best = Path(records[0]["path"])
    data = bytearray(best.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    best.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="best.keras skipped"):
        loaded, record, skipped = load_verified(records, keras.saving.load_model)
    assert record["epoch"] == 4 and [s["path"] for s in skipped] == [str(best)]
    x = _tiny_data()[2]
    assert loaded.predict_on_batch(x).shape == (32, 2)

    for r in records[1:]:
        Path(r["path"]).write_bytes(b"not a model")
    with pytest.warns(UserWarning), pytest.raises(IntegrityError):
        load_verified(records, keras.saving.load_model)
