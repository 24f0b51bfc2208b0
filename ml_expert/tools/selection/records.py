"""The model-selection and training records a run keeps: how candidates were compared, a scored
candidate with its refit, how the budget was spent. Typed (a misspelt key is refused), light
(pydantic only, no scikit-learn): the phase results (ml_expert/phases.py) and the report's inputs
(tools/validation/report_inputs.py) hold them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ml_expert.errors import IntegrityError
from ml_expert.hashing import verify
from ml_expert.tools.selection.verdicts import Figure
from ml_expert.tools.written import Written


class Comparison(BaseModel):
    """How candidates were compared: k-fold CV on train + validation (small data) or the validation split."""

    model_config = ConfigDict(extra="forbid")

    scheme: Literal["cv", "validation"]
    folds: int | None = None
    rule: str


class TrialPlan(BaseModel):
    """`--tune`: how many configurations the search of one family tries in its share of the budget
    (tools/selection/tuning.py's plan_trials), and why."""

    model_config = ConfigDict(extra="forbid")

    name: str
    trials: int
    nominal_fit_seconds: float
    share_seconds: float
    rule: str


class FoldBag(BaseModel):
    """A fold bag that ships (tools/selection/fold_bag.py): its folds and members, and the rule."""

    model_config = ConfigDict(extra="forbid")

    folds: int
    members: list[str]  # the fitted estimators, in blend order
    rule: str


class Refit(Written):
    """How the chosen model was fit again for shipping: on train + validation, as a bag of fold fits
    ("folds": a boosted model compared by cross-validation, tools/selection/fold_bag.py), or not
    ("none": a network whose refit diverged ships as fit on train)."""

    model_config = ConfigDict(extra="forbid")

    on: Literal["train+val", "folds", "none"]
    bag: FoldBag | None = None
    rows: int
    fit_seconds: float
    path: str | None = None  # a scikit-learn refit's file (a network's is the candidate's own path)
    sha256: str | None = None
    epochs: int | None = None  # a network: the epochs it was refit for, and how that went
    final_loss: float | None = None
    diverged: bool | None = None
    selected_path: str | None = None  # the train-only fit the choice was made on
    selected_sha256: str | None = None


class Candidate(Written):
    """One scored candidate as a leaderboard keeps it (tools/selection/baselines.py's CandidateResult,
    a clustering's ClusterCandidate, the network's, a released model's). The fields later phases read
    are typed; the rest of what its tool recorded (CV folds, params, a clustering's k) is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str
    family: str
    kind: Literal["sklearn", "keras"]
    val_score: Figure
    train_score: Figure
    fit_seconds: float
    train_score_kind: str | None = None  # "in-sample", "out-of-bag" (a random forest), ...
    cv_mean: float | None = None  # compared by CV: the mean and spread of its fold scores
    cv_std: float | None = None
    path: str | None = None  # None: a clustering that found no cluster to ship
    sha256: str | None = None
    base: str | None = None  # the baseline family a variant comes from
    threshold: float | None = None  # binary: the tuned cut-off on P(class 1)
    refit_rule: str | None = None  # set: ships as fit on train (why)
    refit_nominal_seconds: float | None = None  # an ensemble: its members' refit by the nominal rule
    refit: Refit | None = None  # the chosen model once refit for shipping
    parent: str | None = None  # --from: the release it is (or was fine-tuned from)
    detail: str | None = None
    dnn_config: dict[str, Any] | None = None  # --from, a network: the DNNConfig it was trained with
    preprocessor: str | None = None  # --from, a registry network: the release's fitted preprocessing
    preprocessor_sha256: str | None = None

    def verified(self) -> str:
        """Its file, once it matches the SHA-256 recorded when it was saved."""
        if not self.path or not self.sha256:
            raise IntegrityError(f"{self.name}: no file with a recorded SHA-256 to load")
        verify(self.path, self.sha256)
        return self.path


class TimeSpent(Written):
    """How the budget was spent: model selection, tuning, the network, the refit, and whether a cap
    fired (clustering records the selection figures only)."""

    model_config = ConfigDict(extra="forbid")

    budget_seconds: float
    model_selection_seconds: float
    cv_folds: int | None = None
    candidates: list[str] = []
    baseline_fit_seconds: dict[str, float] = {}
    tuning_seconds: float = 0.0
    tuning_trials_run: int = 0
    tuning_trials_planned: int = 0
    network_seconds: float = 0.0
    network_epochs_planned: int = 0
    network_epochs_run: int = 0
    refit_seconds: float = 0.0
    total_seconds: float
    share_of_budget: float | None
    cap_hit: bool
