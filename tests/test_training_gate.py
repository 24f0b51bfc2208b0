"""The training gate judges the network only when it ships: a network that lost to a simpler model
(for example one cut short by the wall-clock cap on a loaded machine) cannot refuse that model."""

from __future__ import annotations

from pathlib import Path

from ml_expert.graph.gates import training_gate
from ml_expert.hashing import sha256_file


def _state(tmp_path: Path, chosen_kind: str) -> dict:
    model = tmp_path / "model.bin"
    model.write_bytes(b"model")
    network = {
        "history": {"loss": [0.9]},  # one epoch: the cap fired, so no decrease can show
        "stopped_reason": "wall-clock cap of 7 s hit before the planned epochs",
        "cap_hit": True,
        "loaded_checkpoint": {"path": str(model), "sha256": sha256_file(model)},
    }
    chosen = {"name": "dnn" if chosen_kind == "keras" else "linear", "kind": chosen_kind}
    chosen |= {"path": str(model), "sha256": sha256_file(model)}
    return {"training": {"dnn": network, "chosen": chosen}, "retries": {}}


def test_a_network_that_does_not_ship_cannot_refuse_the_model_that_does(tmp_path: Path) -> None:
    verdict = training_gate(_state(tmp_path, "sklearn"))
    assert verdict.passed, verdict
    names = {c.name for c in verdict.checks}
    assert "network_not_shipped" in names and "loss_decreased" not in names


def test_a_shipped_network_must_show_its_loss_decreasing(tmp_path: Path) -> None:
    verdict = training_gate(_state(tmp_path, "keras"))
    assert not verdict.passed
    assert [c.name for c in verdict.checks if not c.passed] == ["loss_decreased"]
