"""The record of one escalation decision, kept light (pydantic only) so the typed phase results
(ml_expert/phases.py) can hold it without importing scikit-learn; noise.py computes it."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _null_as_nan(value: Any) -> Any:
    return math.nan if value is None else value


Figure = Annotated[float, BeforeValidator(_null_as_nan)]
"""A score as the state's JSON keeps it: a non-finite one (the RMSE of a diverged log-scale fit) is
written as null and read back as NaN, so a result that held it still matches its model."""


class Escalation(BaseModel):
    """The figures of one 'does the complex candidate beat the simpler one' decision."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    simple: str
    candidate: str
    scheme: str  # "5-fold CV" or "bootstrap over 400 validation rows"
    simple_score: Figure
    candidate_score: Figure
    gain: Figure  # candidate - simple, in the metric's better direction (> 0: candidate better)
    standard_error: Figure
    margin: Figure  # NOISE_Z x standard_error
    wins: bool
    rule: str


class StoppedFit(BaseModel):
    """A candidate the time cap stopped (tools/selection/longfit.py): it ran in a child process that
    was ended at its deadline, or never started because the budget was already spent. It is not on
    the leaderboard; the run goes on with the candidates that finished."""

    model_config = ConfigDict(extra="forbid")

    name: str
    base: str
    nominal_seconds: float  # its cost by the nominal count rule, the figure that sent it to a child
    deadline_seconds: float  # what was left of the budget when it started (<= 0: it never started)
    seconds: float  # wall-clock seconds from starting its process to stopping it
    started: bool
    reason: str
