"""The training gate judges the network only when it ships: a network that lost to a simpler model
(for example one cut short by the wall-clock cap on a loaded machine) cannot refuse that model."""

from __future__ import annotations

from pathlib import Path

from phase_helpers import candidate, network_record, validation_result

from ml_expert.graph.gates import training_gate
from ml_expert.hashing import sha256_file


def _state(tmp_path: Path, chosen_kind: str) -> dict:
    model = tmp_path / "model.bin"
    model.write_bytes(b"model")
    network = network_record(
        history={"loss": [0.9]},  # one epoch: the cap fired, so no decrease can show
        stopped_reason="wall-clock cap of 7 s hit before the planned epochs",
        cap_hit=True,
        loaded_checkpoint={"kind": "best", "path": str(model), "sha256": sha256_file(model)},
    )
    name = "dnn" if chosen_kind == "keras" else "linear"
    chosen = candidate(name, kind=chosen_kind, path=str(model), sha256=sha256_file(model))
    training = {"dnn": network, "chosen": chosen, "choice_reason": "the noise rule", "leaderboard": [chosen]}
    return {"training": training, "retries": {}}


def test_a_network_that_does_not_ship_cannot_refuse_the_model_that_does(tmp_path: Path) -> None:
    verdict = training_gate(_state(tmp_path, "sklearn"))
    assert verdict.passed, verdict
    # a training result that does not match its model (TrainingResult) is refused, the field named
    state = _state(tmp_path, "sklearn")
    del state["training"]["choice_reason"]
    malformed = training_gate(state)
    assert not malformed.passed and [c.name for c in malformed.checks] == ["result_typed"]
    assert "choice_reason" in malformed.checks[0].detail
    names = {c.name for c in verdict.checks}
    assert "network_not_shipped" in names and "loss_decreased" not in names


def test_a_shipped_network_must_show_its_loss_decreasing(tmp_path: Path) -> None:
    verdict = training_gate(_state(tmp_path, "keras"))
    assert not verdict.passed
    assert [c.name for c in verdict.checks if not c.passed] == ["loss_decreased"]


def _versus_dummy(chosen_correct: int, dummy_correct: int, rows: int):
    """A binary test split where the dummy predicts the majority class and the model misses a few."""
    import numpy as np

    from ml_expert.tools.selection.noise import escalation

    y = np.zeros(rows, dtype=int)
    y[: rows // 16] = 1  # a 94 % majority class
    dummy = np.tile([0.9, 0.1], (rows, 1))
    model = dummy.copy()
    # the model gets `chosen_correct - dummy_correct` more (or fewer) rows right than the dummy
    change = chosen_correct - dummy_correct
    if change >= 0:
        model[:change] = [0.1, 0.9]  # minority rows found
    else:
        model[rows - 1 + change : rows - 1] = [0.1, 0.9]  # majority rows called minority
    versus = escalation("accuracy", y, dummy, model, seed=0, simple="dummy", candidate="linear")
    return validation_result(
        test_score=versus.candidate_score,
        dummy_test_score=versus.simple_score,
        versus_dummy=versus.model_dump(),
    )


def test_a_test_shortfall_inside_the_noise_is_a_tie_and_beyond_it_a_refusal() -> None:
    from ml_expert.graph.gates import validation_gate

    def dummy_check(validation: dict):
        checks = {c.name: c for c in validation_gate({"options": {}, "validation": validation}).checks}
        return checks["beats_dummy_baseline"]

    # 3 rows of 800 worse than the majority class: inside 2 standard errors of the difference
    tie = dummy_check(_versus_dummy(0, 3, 800))
    assert tie.passed and "a tie within the noise" in tie.detail
    # 40 rows of 800 worse: beyond the noise, refused
    assert not dummy_check(_versus_dummy(0, 40, 800)).passed
    # better than the dummy: passes as before
    assert dummy_check(_versus_dummy(10, 0, 800)).passed
