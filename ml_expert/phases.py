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

from ml_expert.errors import PhaseResultError
from ml_expert.tools.data.cleaning import OutlierReport
from ml_expert.tools.data.modality import SequenceColumns
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.data.splitting import SplitSizes
from ml_expert.tools.data.text import VocabularyCheck
from ml_expert.tools.deployment.exports import ExportRecord
from ml_expert.tools.execution_report import ExecutionReport
from ml_expert.tools.selection.budget import EpochPlan
from ml_expert.tools.selection.clustering_choice import ClusteringChoice
from ml_expert.tools.selection.ensemble import EnsemblePlan
from ml_expert.tools.selection.records import Candidate, Comparison, TimeSpent, TrialPlan
from ml_expert.tools.selection.sampling import TrainingSample
from ml_expert.tools.selection.sequence_choice import ReaderChoice
from ml_expert.tools.selection.verdicts import Escalation, StoppedFit
from ml_expert.tools.training.dnn import DNNConfig
from ml_expert.tools.training.records import NetworkRecord
from ml_expert.tools.validation.calibration import CalibrationFigures
from ml_expert.tools.validation.clustering_checks import ClusteringChecks
from ml_expert.tools.validation.fairness import Fairness
from ml_expert.tools.validation.latency import Latency
from ml_expert.tools.validation.metrics import HeldOutMetrics, ProductionOnTest
from ml_expert.tools.written import Written


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
    sequence: SequenceColumns | None = None  # a text's word-id column, or a sequence's steps
    input_schema: InputSchema = Field(alias="schema")
    features: list[str]
    n_features_out: int
    dropped_columns: dict[str, str] = {}
    leakage_suspects: dict[str, Any] = {}
    kept_columns: dict[str, str] = {}
    rows_in: int
    duplicates_removed: int = 0
    rows_without_target: int = 0
    rare_class_rows: int = 0  # rows of classes too rare to split, dropped before the split
    outliers_removed: int = 0
    outliers: OutlierReport = OutlierReport()
    split_sizes: SplitSizes
    splits_disjoint: bool
    classes: list[Any] | None = None
    train_class_counts: dict[str, int] = {}  # class index (as text) -> training rows
    imbalance_ratio: float | None = None
    load: dict[str, Any] = {}
    files: dict[str, str]  # split and array name -> path in the run directory
    file_hashes: dict[str, str] | None = None  # the same names -> SHA-256, checked on every read
    preprocessor_sha256: str
    # --from a release that reads text: its vocabulary's unknown training tokens, and the one read with
    vocabulary_check: VocabularyCheck | None = None

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps (the schema under its key `schema`)."""
        return self.model_dump(mode="json", by_alias=True)

    @field_serializer("sequence")
    def _sequence_as_written(self, sequence: SequenceColumns | None, info: FieldSerializationInfo) -> Any:
        return sequence.written(info.mode) if sequence else None

    @property
    def n_classes(self) -> int:
        """Classes seen in the training rows (0 for regression and clustering)."""
        return len(self.train_class_counts) if self.task == "classification" else 0


class HeldOutRows(_PhaseResult):
    """Which rows a run's test score was measured on, as its data result says: the data's fingerprint
    and the split sizes (with the run's seed, what the registry compares two runs by). Read from the
    data result alone, so a release judged on a partial state (a fine-tuned or an imported run) still
    compares them."""

    model_config = ConfigDict(extra="ignore")
    _key: ClassVar[str] = "data"
    _what: ClassVar[str] = "data-preparation"

    fingerprint: str
    split_sizes: SplitSizes


class DataOrigin(_PhaseResult):
    """Where a run's data came from and the task it poses, as its data result says (`source`: the
    file, folder or demo name; None for arrays given in memory): what a release is named after when
    no --model-name is given, and the task a run's result reports. Read from the data result
    alone, like HeldOutRows."""

    model_config = ConfigDict(extra="ignore")
    _key: ClassVar[str] = "data"
    _what: ClassVar[str] = "data-preparation"

    source: str | None
    task: Literal["classification", "regression", "clustering"]


class PreparationFinding(_Finding):
    """What a run's data-analysis finding keeps of its DataResult (the schema and the files stay in
    the state; the finding adds the profile): what a later `--from` and the run's summary read."""

    model_config = ConfigDict(extra="ignore")
    _what: ClassVar[str] = "data-analysis"

    source: str | None
    fingerprint: str
    task: Literal["classification", "regression", "clustering"]
    features: list[str]
    split_sizes: SplitSizes
    preprocessor_sha256: str
    # split and array name -> path: the findings this code writes leave them to the state (empty)
    files: dict[str, str] = {}


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
    epoch_plan: EpochPlan | None = None  # tools/selection/budget.py's
    estimated_flops_per_row: float | None = None
    reader: ReaderChoice | None = None  # text and sequences: the reader chosen and why
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


class Tuning(Written):
    """`--tune`: the search's plan (tools/selection/records.py's TrialPlan) and, when it ran, its
    TuningResult."""

    model_config = ConfigDict(extra="forbid")

    plan: TrialPlan
    ran: bool
    name: str | None = None
    metric: str | None = None
    folds: int | None = None
    trials_planned: int = 0
    trials_run: int = 0
    cap_hit: bool = False
    seconds: float = 0.0
    default_cv_score: float | None = None
    best_index: int | None = None
    best_params: dict[str, Any] | None = None
    best_cv_score: float | None = None
    trials: list[dict[str, Any]] = []
    candidate: str | None = None  # the tuned configuration's candidate, when it beat the defaults


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


class TaskAnalysis(BaseModel):
    """The facts the researcher's choice of models rests on (agents/researcher.py's analyse_task).
    A clustering's analysis has no classes, imbalance, image shape nor sequence: the state keeps
    the keys its agent set."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["classification", "regression", "clustering"]
    task_reason: str
    rows: SplitSizes
    features_in: int
    features_out: int
    classes: int | None = None
    imbalance_ratio: float | None = None
    modality: str
    image_shape: list[int] | None = None
    sequence: SequenceColumns | None = None  # the data result's

    @field_serializer("sequence")
    def _sequence_as_written(self, sequence: SequenceColumns | None, info: FieldSerializationInfo) -> Any:
        return sequence.written(info.mode) if sequence else None


class SelectionResult(_PhaseResult):
    """The model-selection phase's result: the metric, the scored candidates, the incumbent and the
    plan for training. Leaderboard rows stay candidate records (tools/selection/baselines.py's
    CandidateResult, or clustering's); `plan` is the network plan the researcher wrote (NetworkPlan)."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "selection"
    _what: ClassVar[str] = "model-selection"

    task: Literal["classification", "regression", "clustering"]
    analysis: TaskAnalysis
    metric: str
    metric_reason: str
    greater_is_better: bool = True
    comparison: Comparison | None = None  # None for clustering
    escalations: list[Escalation] = []
    ensemble: EnsemblePlan | None = None  # None for clustering
    leaderboard: list[Candidate]
    best_baseline: str  # the incumbent's name (after every escalation)
    best_reason: str | None = None  # why it is the incumbent (None in runs recorded before it was kept)
    plan: NetworkPlan
    seconds: float
    cap_hit: bool = False
    stopped: list[StoppedFit] = []  # candidates the time cap stopped (tools/selection/longfit.py)
    baseline_seconds: dict[str, float] = {}
    budget: float
    tuning: Tuning | None = None
    execution: ExecutionReport | None = None  # where the independent fits ran (tools/execution_report.py)
    clustering: ClusteringChoice | None = None  # a clustering's figures and choice
    sample: TrainingSample | None = None  # the candidates were fit on a sample (tools/selection/sampling.py)

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps: a non-finite figure (a loss's room, a diverged fit's
        score) is written as null, as it was when the records were plain dicts."""
        return _ANY.dump_python(self.model_dump(), mode="json")

    @field_serializer("plan")
    def _plan_as_written(self, plan: NetworkPlan, info: FieldSerializationInfo) -> dict[str, Any]:
        """The plan with the keys its agent wrote (clustering's has no sizes), and in JSON the way an
        untyped dict is written (a non-finite room, a loss's, becomes null), so the state and the
        model-selection finding read as they always did."""
        written = plan.model_dump(exclude_unset=True)
        return _ANY.dump_python(written, mode="json") if info.mode == "json" else written

    @field_serializer("analysis")
    def _analysis_as_written(self, analysis: TaskAnalysis, info: FieldSerializationInfo) -> dict[str, Any]:
        """The analysis with the keys its agent wrote (clustering's has no classes)."""
        return analysis.model_dump(mode=info.mode, exclude_unset=True)

    @property
    def best(self) -> Candidate:
        """The incumbent's leaderboard row."""
        return self.row(self.best_baseline)

    def row(self, name: str) -> Candidate:
        """A candidate's leaderboard row by its name."""
        found = next((c for c in self.leaderboard if c.name == name), None)
        if found is None:
            raise PhaseResultError(f"the model-selection leaderboard has no {name}")
        return found

    @property
    def cv_folds(self) -> int | None:
        return self.comparison.folds if self.comparison else None


class FineTuning(Written):
    """--from: the released model the run continued, and the line its fine-tuned copy belongs to."""

    model_config = ConfigDict(extra="forbid")

    parent: str  # the version (or "file NAME.keras")
    parent_model: str
    parent_run: str | None
    model_name: str | None  # the registry's name of the released model (None: a .keras file)
    parent_sha256: str | None = None  # a network
    preprocessing: str | None = None  # a network: whose preprocessing its inputs come from
    # a regression network: the release's target scale its fine-tuned copy learns and is served on
    target_mean: float | None = None
    target_std: float | None = None
    # a release that reads text: the new training tokens its vocabulary misses (the run reads with it)
    vocabulary_check: VocabularyCheck | None = None
    # that text read with the release's vocabulary ("adopted"), the release's with the new words
    # appended ("extended": its embedding grew) or the run's own ("own": the release is no candidate)
    vocabulary: Literal["adopted", "extended", "own"] | None = None


class TrainingResult(_PhaseResult, _Finding, Written):
    """The training phase's result: the model that ships (`chosen`, a candidate with its refit), why,
    every candidate scored, how the budget was spent, and the network's record. The state keeps
    the keys the training node wrote (a run without a network has no `dnn`)."""

    model_config = ConfigDict(extra="forbid")
    _key: ClassVar[str] = "training"
    _what: ClassVar[str] = "training"

    chosen: Candidate
    choice_reason: str
    leaderboard: list[Candidate]
    attempt: int = 0
    time: TimeSpent | None = None
    dnn: NetworkRecord | None = None  # the trained network (shipped or not)
    diverged_network: NetworkRecord | None = None  # kept apart: never exported nor scored
    network_cut_short: NetworkRecord | None = None  # stopped by the wall-clock cap before learning
    network_escalation: Escalation | None = None  # the network against the incumbent
    fine_tuning: FineTuning | None = None  # --from: the released model and its fine-tuned copy

    def state(self) -> dict[str, Any]:
        """What the graph's state keeps: the node's keys, figures as Python floats (a diverged
        network's NaN loss stays NaN in the checkpoint)."""
        return self.model_dump()

    def board(self) -> list[dict[str, Any]]:
        """The leaderboard as its records were written (metrics.json, the report)."""
        return [c.model_dump() for c in self.leaderboard]


class _Recorded(_PhaseResult, _Finding):
    """A result that is also a finding: the state and the finding hold the keys its agent wrote."""

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps: the fields its agent set (a clustering run's
        validation has no calibration nor fairness), so the finding reads as it always did."""
        return self.model_dump(exclude_unset=True)


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
    test_metrics: HeldOutMetrics  # the state keeps the names the tester set (no report text)
    calibration: CalibrationFigures | None = None  # a binary classifier's (the curve: metrics.json)
    fairness: dict[str, Fairness] | None = None  # sensitive column -> its group figures
    fairness_unavailable: dict[str, str] | None = None  # named column -> why it cannot be grouped on
    fairness_gap: float | None = None
    production_on_test: ProductionOnTest | None = None
    clustering: ClusteringChecks | None = None  # clustering's evaluation (chance, sizes, stability)
    profiles_path: str | None = None  # clustering: aggregates per cluster, shipped in the package
    metrics_path: str
    report_path: str

    @property
    def numeric_metrics(self) -> dict[str, float]:
        """The test metrics that are single figures (no confusion matrix, no per-class report)."""
        return self.test_metrics.figures


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
