"""The record of one escalation decision, kept light (pydantic only) so the typed phase results
(ml_expert/phases.py) can hold it without importing scikit-learn; noise.py computes it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Escalation(BaseModel):
    """The figures of one 'does the complex candidate beat the simpler one' decision."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    simple: str
    candidate: str
    scheme: str  # "5-fold CV" or "bootstrap over 400 validation rows"
    simple_score: float
    candidate_score: float
    gain: float  # candidate - simple, in the metric's better direction (> 0: candidate better)
    standard_error: float
    margin: float  # NOISE_Z x standard_error
    wins: bool
    rule: str
