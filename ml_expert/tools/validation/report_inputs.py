"""What the evaluation report is rendered from: typed, built by the tester (or the clustering
evaluator) from the typed phase results, validated when built, kept as `report_inputs.json`.

Every field is required and no other key is accepted: a producer that renames or forgets a field
fails when it builds the inputs, never by a silent default in the report. The kept file is
`{"version": 2, "kind": ..., "info": {...}}` with the same `info` keys as before; a file written
before the version (an older run, re-rendered when its deployment resumes) is read with the keys a
run only wrote when they applied filled in as absent (`LEGACY_ABSENT`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ml_expert.tools.data.splitting import SplitSizes
from ml_expert.tools.execution_report import ExecutionReport
from ml_expert.tools.selection.clustering import ClusterCandidate
from ml_expert.tools.selection.records import Candidate, Comparison, TimeSpent
from ml_expert.tools.selection.sampling import TrainingSample
from ml_expert.tools.selection.verdicts import Escalation, Figure
from ml_expert.tools.training.hardware import GpuUtilisation
from ml_expert.tools.training.records import NetworkRecord
from ml_expert.tools.training.throughput import ExecutionPlan
from ml_expert.tools.validation.calibration import Calibration
from ml_expert.tools.validation.clustering import ClusteringEvaluation
from ml_expert.tools.validation.fairness import Fairness
from ml_expert.tools.validation.metrics import HeldOutMetrics, ProductionOnTest

VERSION = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Decision(BaseModel):
    """One decision with its reason, as run.json keeps it (the phase and agent beside it)."""

    model_config = ConfigDict(extra="allow")

    decision: str
    reason: str


class SupervisedReportInputs(_Strict):
    """The report of a classification or regression run."""

    run_id: str
    task: Literal["classification", "regression"]
    source: str | None
    fingerprint: str
    split_sizes: SplitSizes
    chosen: str
    choice_reason: str
    metric: str
    metric_reason: str
    comparison: Comparison | None
    escalations: list[Escalation]
    threshold: float | None
    test_reads: int
    test_reads_interrupted: int
    test_metrics: HeldOutMetrics  # with the classification report's text
    dummy_test_score: Figure
    overfit_gap: Figure
    leaderboard: list[Candidate]
    dnn: NetworkRecord | None
    time: TimeSpent | None
    execution: ExecutionReport | None
    calibration: Calibration | None
    fairness: dict[str, Fairness] | None
    fairness_unavailable: dict[str, str] | None
    fairness_gap: float | None
    production_on_test: ProductionOnTest | None
    decisions: list[Decision]
    sample: TrainingSample | None = None  # the candidates were fit on a sample of the training rows

    @property
    def classification_report(self) -> str | None:
        return self.test_metrics.classification_report

    @property
    def network_execution(self) -> ExecutionPlan | None:
        """How the network's device was driven (tools/training/throughput.py's plan), if it trained."""
        return self.dnn.execution if self.dnn else None

    @property
    def gpu_utilisation(self) -> GpuUtilisation | None:
        return self.dnn.hardware.gpu_utilisation if self.dnn and self.dnn.hardware else None


class ClusteringReportInputs(_Strict):
    """The report of a clustering run (aggregates only)."""

    run_id: str
    source: str | None
    fingerprint: str
    split_sizes: SplitSizes
    chosen: str
    choice_reason: str
    metric_reason: str
    test_reads: int
    evaluation: ClusteringEvaluation
    leaderboard: list[ClusterCandidate]
    decisions: list[Decision]


ReportInputs = SupervisedReportInputs | ClusteringReportInputs
Kind = Literal["supervised", "clustering"]

LEGACY_ABSENT: dict[Kind, dict[str, Any]] = {
    "supervised": {
        "comparison": None,
        "escalations": [],
        "threshold": None,
        "test_reads_interrupted": 0,
        "dnn": None,
        "time": None,
        "execution": None,
        "calibration": None,
        "fairness": None,
        "fairness_unavailable": None,
        "fairness_gap": None,
        "production_on_test": None,
        "decisions": [],
    },
    "clustering": {"decisions": []},
}
"""What a version-1 file (no "version" key) may lack: keys its tester wrote only when they applied."""


class LatencyRow(_Strict):
    """One line of the report's latency table: an export (or the package) and what it measured."""

    format: str  # "linear/onnx", "dnn/tflite", "package (inference.py)"
    size_bytes: int | None
    single_row_calls: int | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    batch_rows: int | None = None
    batch_rows_per_second: float | None = None
    input: str | None = None  # what one call takes ("dict rows, schema-validated, ...")
    error: str | None = None  # why it was not measured

    @property
    def measured(self) -> bool:
        return self.error is None and self.p50_ms is not None


def kind_of(inputs: ReportInputs) -> Kind:
    return "clustering" if isinstance(inputs, ClusteringReportInputs) else "supervised"


def kept(inputs: ReportInputs) -> dict[str, Any]:
    """What `report_inputs.json` holds (before json.dumps)."""
    return {"version": VERSION, "kind": kind_of(inputs), "info": inputs.model_dump()}


def from_kept(data: dict[str, Any]) -> ReportInputs:
    """The inputs back from `report_inputs.json` (this version's, or an older run's)."""
    kind: Kind = data["kind"]
    info = data["info"] if data.get("version") else {**LEGACY_ABSENT[kind], **data["info"]}
    model = ClusteringReportInputs if kind == "clustering" else SupervisedReportInputs
    return model.model_validate(info)
