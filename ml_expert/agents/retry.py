"""The one retry policy for a diverged network, read by the training node, its gate and the router.

A network whose loss diverged is trained again with a lower learning rate and tighter gradient
clipping, at most `max_retries` times; after that it is discarded and the best baseline ships.
Before, the count lived in the node and was read again by the gate and the router: three places
that had to agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ml_expert.errors import PhaseResultError
from ml_expert.phases import TrainingResult


class Retries(BaseModel):
    """The graph's `retries` channel: the retries done per phase (LangGraph merges it per key).

    Only our nodes write it, so a key it does not know is a defect and refused (PhaseResultError,
    the key named) instead of reading as no retries at all."""

    model_config = ConfigDict(extra="forbid")

    training: int = 0

    @classmethod
    def of(cls, state: dict[str, Any]) -> Retries:
        try:
            return cls.model_validate(state.get("retries") or {})
        except ValidationError as exc:
            raise PhaseResultError(f"the retries channel does not match its model: {exc}") from exc

    def state(self) -> dict[str, int]:
        """The channel's update (JSON in the checkpoint)."""
        return self.model_dump(mode="json")


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_retries: int = 2
    lr_factor: float = 0.1  # the learning rate is multiplied by this on each retry
    clip_factor: float = 0.5  # and the gradient clip norm by this

    @staticmethod
    def retries(state: dict[str, Any]) -> int:
        """Retries done so far (the graph's `retries` channel)."""
        return Retries.of(state).training

    def attempt(self, state: dict[str, Any]) -> int:
        """This training node's attempt: one more than the last when the graph routed back after a
        divergence that was not discarded."""
        training = TrainingResult.maybe(state)
        previous = training.diverged_network if training else None
        return self.retries(state) + (1 if previous and not previous.discarded else 0)

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_retries

    def scaled(self, learning_rate: float, clipnorm: float, attempt: int) -> dict[str, float]:
        """The optimiser settings of an attempt."""
        return {
            "learning_rate": learning_rate * self.lr_factor**attempt,
            "clipnorm": clipnorm * self.clip_factor**attempt,
        }

    def should_retry(self, state: dict[str, Any]) -> bool:
        """The router's question: a refused training gate goes back to training when the network
        diverged, was not discarded and retries are left."""
        training = TrainingResult.maybe(state)
        diverged = training.diverged_network if training else None
        return diverged is not None and not diverged.discarded and not self.exhausted(self.retries(state))


TRAINING_RETRY = RetryPolicy()
