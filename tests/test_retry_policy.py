"""One retry policy for a diverged network: the node's attempt count, the gate's threshold and the
router's decision come from the same object, so they cannot disagree."""

from __future__ import annotations

from phase_helpers import candidate, network_record

from ml_expert.agents.retry import TRAINING_RETRY, RetryPolicy
from ml_expert.graph.gates import should_retry_training, training_gate


def _state(retries: int, diverged: dict | None) -> dict:
    training = {"chosen": candidate("linear"), "choice_reason": "best", "leaderboard": []}
    return {
        "retries": {"training": retries},
        "training": {**training, "diverged_network": diverged} if diverged else {},
    }


def test_attempts_count_up_after_a_divergence_and_stop_at_the_policy_limit() -> None:
    diverged = network_record(
        config={"learning_rate": 0.1}, stopped_reason="loss is NaN", diverged=True, best_val_loss=float("nan")
    )
    assert TRAINING_RETRY.attempt(_state(0, None)) == 0
    assert TRAINING_RETRY.attempt(_state(0, diverged)) == 1
    assert TRAINING_RETRY.attempt(_state(1, {**diverged, "discarded": "gave up"})) == 1
    limit = TRAINING_RETRY.max_retries
    assert should_retry_training(_state(limit - 1, diverged))
    assert not should_retry_training(_state(limit, diverged))
    assert not should_retry_training(_state(0, {**diverged, "discarded": "gave up"}))
    verdict = training_gate(_state(limit - 1, diverged))
    check = next(c for c in verdict.checks if c.name == "loss_finite")
    assert check.threshold == limit and not check.passed


def test_each_retry_lowers_the_learning_rate_and_tightens_clipping() -> None:
    policy = RetryPolicy(max_retries=3, lr_factor=0.5, clip_factor=0.5)
    assert policy.scaled(0.01, 1.0, 0) == {"learning_rate": 0.01, "clipnorm": 1.0}
    assert policy.scaled(0.01, 1.0, 2) == {"learning_rate": 0.0025, "clipnorm": 0.25}
    assert policy.exhausted(3) and not policy.exhausted(2)
