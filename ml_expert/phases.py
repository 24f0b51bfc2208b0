"""Typed phase results: what one phase hands the next, validated when a node starts.

The graph's checkpointed state stays plain JSON (small, readable by any LangGraph checkpointer);
these models are its contract. A node reads `DataResult.of(state)`, never `state["data"]["key"]`:
a renamed or missing key fails at the start of the node that needs it, with the field's name,
instead of a later phase reading a default.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)

from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.deployment.exports import ExportRecord
from ml_expert.tools.selection.verdicts import Escalation
from ml_expert.tools.training.dnn import DNNConfig
from ml_expert.tools.validation.latency import Latency


class PhaseResultError(ValueError):
    """A phase result is missing or does not match its model (a defect, not a user error)."""


class _PhaseResult(BaseModel):
    """A phase's result under `_key` in the graph's state, read back validated."""

    _key: ClassVar[str]
    _what: ClassVar[str]

    @classmethod
    def of(cls, state: dict[str, Any]) -> Self:
        """The phase's result in `state`, validated."""
        raw = state.get(cls._key)
        if not isinstance(raw, dict):
            raise PhaseResultError(f"the {cls._what} result is missing from the state")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise PhaseResultError(f"the {cls._what} result does not match its model: {exc}") from exc

    @classmethod
    def maybe(cls, state: dict[str, Any]) -> Self | None:
        """The phase's result when the run got that far (a failed run's summary, a first attempt)."""
        return cls.of(state) if state.get(cls._key) else None


class DataResult(_PhaseResult):
    """The data-preparation phase's result: the prepared splits (as hashed files) and the figures
    every later phase and gate needs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _key: ClassVar[str] = "data"
    _what: ClassVar[str] = "data-preparation"

    source: str | None
    fingerprint: str
    task: Literal["classification", "regression", "clustering"]
    task_reason: str
    modality: str = "tabular"
    image_shape: list[int] | None = None
    sequence: dict[str, Any] | None = None  # the word-id sequence column of a text modality
    input_schema: InputSchema = Field(alias="schema")
    features: list[str]
    n_features_out: int
    dropped_columns: dict[str, str] = {}
    leakage_suspects: dict[str, Any] = {}
    kept_columns: dict[str, str] = {}
    rows_in: int
    duplicates_removed: int = 0
    rows_without_target: int = 0
    outliers_removed: int = 0
    outliers: dict[str, Any] = {}
    split_sizes: dict[str, int]
    splits_disjoint: bool
    classes: list[Any] | None = None
    train_class_counts: dict[str, int] = {}  # class index (as text) -> training rows
    imbalance_ratio: float | None = None
    load: dict[str, Any] = {}
    files: dict[str, str]  # split and array name -> path in the run directory
    file_hashes: dict[str, str] | None = None  # the same names -> SHA-256, checked on every read
    preprocessor_sha256: str

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps (the schema under its key `schema`)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def n_classes(self) -> int:
        """Classes seen in the training rows (0 for regression and clustering)."""
        return len(self.train_class_counts) if self.task == "classification" else 0


class Comparison(BaseModel):
    """How candidates were compared: k-fold CV on train + validation (small data) or the validation split."""

    model_config = ConfigDict(extra="forbid")

    scheme: Literal["cv", "validation"]
    folds: int | None = None
    rule: str


class NetworkPlan(BaseModel):
    """The researcher's plan for the network (agents/researcher.py's plan_network): whether to train
    it, its configuration, and the figures the plan gate and the training phase read. Clustering
    plans no network and says why (`reason`)."""

    model_config = ConfigDict(extra="forbid")

    train_dnn: bool
    network: str | None = None  # its name ("Keras DNN", "Keras text CNN"...)
    reason: str | None = None  # clustering: why there is no network
    room: float | None = None  # what the best baseline leaves to gain
    room_rule: str | None = None
    dnn_config: DNNConfig | None = None
    epoch_plan: dict[str, Any] | None = None  # the researcher's record (budget.py's EpochPlan)
    estimated_flops_per_row: float | None = None
    # text and sequences: the reader chosen and why (sequence_choice.py's ReaderChoice); a record only,
    # left untyped: its room is infinite for a loss and is written to JSON as null
    reader: dict[str, Any] | None = None
    estimated_memory_mb: float | None = None
    available_memory_mb: float | None = None

    @model_validator(mode="after")
    def _a_network_to_train_is_sized(self) -> Self:
        if self.train_dnn:
            needed = ("dnn_config", "estimated_flops_per_row", "estimated_memory_mb", "available_memory_mb")
            missing = [name for name in needed if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a plan that trains the network needs {', '.join(missing)}")
        return self

    @property
    def config(self) -> DNNConfig:
        """The network's configuration (a plan that trains the network always has one)."""
        if self.dnn_config is None:
            raise PhaseResultError("the selection result's plan has no dnn_config")
        return self.dnn_config


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


class SelectionResult(_PhaseResult):
    """The model-selection phase's result: the metric, the scored candidates, the incumbent and the
    plan for training. Leaderboard rows stay candidate records (tools/selection/baselines.py's
    CandidateResult, or clustering's); `plan` is the network plan the researcher wrote (NetworkPlan)."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "selection"
    _what: ClassVar[str] = "model-selection"

    task: Literal["classification", "regression", "clustering"]
    analysis: dict[str, Any]
    metric: str
    metric_reason: str
    greater_is_better: bool = True
    comparison: Comparison | None = None  # None for clustering
    escalations: list[dict[str, Any]] = []
    ensemble: dict[str, Any] | None = None
    leaderboard: list[dict[str, Any]]
    best_baseline: str  # the incumbent's name (after every escalation)
    best_reason: str | None = None  # why it is the incumbent (None in runs recorded before it was kept)
    plan: NetworkPlan
    seconds: float
    cap_hit: bool = False
    baseline_seconds: dict[str, float] = {}
    budget: float
    tuning: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None
    clustering: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps."""
        return self.model_dump(mode="json")

    @field_serializer("plan")
    def _plan_as_written(self, plan: NetworkPlan, info: FieldSerializationInfo) -> dict[str, Any]:
        """The plan with the keys its agent wrote (clustering's has no sizes), and in JSON the way an
        untyped dict is written (a non-finite room, a loss's, becomes null), so the state and the
        model-selection finding read as they always did."""
        written = plan.model_dump(exclude_unset=True)
        return _ANY.dump_python(written, mode="json") if info.mode == "json" else written

    @property
    def best(self) -> dict[str, Any]:
        """The incumbent's leaderboard row."""
        return next(c for c in self.leaderboard if c["name"] == self.best_baseline)

    @property
    def cv_folds(self) -> int | None:
        return self.comparison.folds if self.comparison else None


class TrainingResult(_PhaseResult):
    """The training phase's result: the model that ships (`chosen`, a candidate record with its
    refit), why, every candidate scored, how the budget was spent, and the network's record."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "training"
    _what: ClassVar[str] = "training"

    chosen: dict[str, Any]
    choice_reason: str
    leaderboard: list[dict[str, Any]]
    attempt: int = 0
    time: dict[str, Any] | None = None
    dnn: dict[str, Any] | None = None  # the trained network (shipped or not)
    diverged_network: dict[str, Any] | None = None  # kept apart: never exported nor scored
    network_cut_short: dict[str, Any] | None = None  # stopped by the wall-clock cap before learning
    network_escalation: dict[str, Any] | None = None  # the network against the incumbent
    fine_tuning: dict[str, Any] | None = None  # --from: the released model and its fine-tuned copy


class _Finding(BaseModel):
    """A record that an agent also writes to memory as a finding."""

    _what: ClassVar[str]

    @classmethod
    def from_finding(cls, value: dict[str, Any]) -> Self:
        """The record as found in memory (`AgentContext.record` adds the phase's `decisions`)."""
        try:
            return cls.model_validate({k: v for k, v in value.items() if k != "decisions"})
        except ValidationError as exc:
            raise PhaseResultError(f"the {cls._what} finding does not match its model: {exc}") from exc


class _Recorded(_PhaseResult, _Finding):
    """A result that is also a finding: the state and the finding hold the keys its agent wrote."""

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps: the fields its agent set (a clustering run's
        validation has no calibration nor fairness), so the finding reads as it always did."""
        return self.model_dump(exclude_unset=True)


class ProductionOnTest(BaseModel):
    """--from: the current production version scored on this run's test rows (the release compares)."""

    model_config = ConfigDict(extra="forbid")

    version: str
    test_score: float


class ValidationResult(_Recorded):
    """The validation phase's result: the chosen model's figures on the untouched test split (read
    once), against the dummy, with the overfitting gap, fairness and, for clustering, its checks.
    Built by the tester (agents/tester.py, agents/clustering.py); recorded as the `metrics` finding."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "validation"
    _what: ClassVar[str] = "validation"

    model: str
    primary_metric: str
    greater_is_better: bool = True
    decision_threshold: float | None = None
    test_score: float
    dummy_test_score: float
    versus_dummy: Escalation | None = None  # the chosen model against the dummy on the test rows
    overfit_gap: float
    test_reads: int
    test_reads_interrupted: int = 0
    test_read_models: int = 1
    test_metrics: dict[str, Any]
    calibration: dict[str, Any] | None = None
    fairness: dict[str, dict[str, Any]] | None = None  # sensitive column -> its group figures
    fairness_unavailable: dict[str, str] | None = None  # named column -> why it cannot be grouped on
    fairness_gap: float | None = None
    production_on_test: ProductionOnTest | None = None
    clustering: dict[str, Any] | None = None  # clustering's evaluation (chance, sizes, stability)
    profiles_path: str | None = None  # clustering: aggregates per cluster, shipped in the package
    metrics_path: str
    report_path: str

    @property
    def numeric_metrics(self) -> dict[str, float]:
        """The test metrics that are single figures (no confusion matrix, no per-class report)."""
        return {k: v for k, v in self.test_metrics.items() if isinstance(v, int | float)}


class Release(_Finding):
    """Where the registrar put the released package: the named model, its new version, the aliases.
    Recorded as the `registry` finding."""

    model_config = ConfigDict(extra="forbid")
    _what: ClassVar[str] = "registry"

    model_name: str
    version: str
    aliases: dict[str, str]
    registry: str


class ReleaseSource(BaseModel):
    """What a later `--from` run continues from, kept in the registry version beside the package
    (which serves ONNX only): the loadable model and, for a network, the fitted preprocessing its
    inputs come from and the configuration it was trained with."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["keras", "sklearn"]
    files: dict[str, str]  # name in the version's source/ folder -> the file in the run directory
    sha256: dict[str, str]  # the same names -> SHA-256, checked when copied and before every load
    config: dict[str, Any] | None = None  # keras: the DNNConfig its learning rate is taken from


class DeploymentResult(_Recorded):
    """The deployment phase's result: every export of the shipped model with its parity check, the
    package (None when an export failed) with its manifest and measured latency, and, once the
    release gate passed and the registrar ran, the release. Recorded as the `deployment` finding."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "deployment"
    _what: ClassVar[str] = "deployment"

    exports: list[ExportRecord]
    package_dir: str | None
    manifest: dict[str, Any]  # the package's manifest.json: format, files (name -> SHA-256), metadata
    model: str
    package_latency: Latency | None  # the package through inference.py (None: no package)
    registry: Release | None = None
    source: ReleaseSource | None = None  # what the registry keeps for fine-tuning (`--from`)

    @property
    def package(self) -> str:
        """The package's folder; only a deployment that wrote one can be released."""
        if self.package_dir is None:
            raise PhaseResultError("the deployment result has no package (an export failed its check)")
        return self.package_dir

    @property
    def files(self) -> dict[str, str]:
        """The package's files with their SHA-256, as its manifest lists them."""
        return dict(self.manifest.get("files") or {})
