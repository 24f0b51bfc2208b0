"""The network's training record as a run keeps it: tools/training/dnn.py's TrainResult with the
configuration it ran with, where its files are and its scored candidate. Typed and light (no
TensorFlow): the training phase's result (ml_expert/phases.py) and the report's inputs hold it."""

from __future__ import annotations

from pydantic import ConfigDict

from ml_expert.errors import PhaseResultError
from ml_expert.tools.selection.records import Candidate
from ml_expert.tools.selection.verdicts import Figure
from ml_expert.tools.training.checkpoints import CheckpointRecord, SkippedCheckpoint
from ml_expert.tools.training.dnn import DNNConfig, TrainResult
from ml_expert.tools.training.hardware import Hardware
from ml_expert.tools.training.throughput import ExecutionPlan
from ml_expert.tools.written import Written


class NetworkRecord(Written, TrainResult):
    """The network's training (agents/ml_developer/network.py's train_network): tools/training/dnn.py's
    TrainResult with the configuration it ran with, where its files are and, once it converged, its
    scored candidate. A training result keeps it as `dnn`, `diverged_network` or `network_cut_short`."""

    model_config = ConfigDict(extra="forbid")

    summary: str | None = None  # Keras's model summary (not in the finding, nor in a cut-short record)
    # a finding is strict JSON: a diverged network's NaN loss is null there, read back as NaN
    best_val_loss: Figure
    history: dict[str, list[Figure]]
    config: DNNConfig
    execution: ExecutionPlan | None = None  # tools/training/throughput.py's plan
    attempt: int = 0
    hardware: Hardware | None = None  # tools/training/hardware.py's check, with the GPU's use
    history_path: str | None = None
    curves_path: str | None = None
    backend: str | None = None
    target_mean: float | None = None  # regression: the train split's scale the network learnt on
    target_std: float | None = None
    candidate: Candidate | None = None  # a converged network, scored on validation
    loaded_checkpoint: CheckpointRecord | None = None  # the checkpoint reloaded once its hash matched
    skipped_checkpoints: list[SkippedCheckpoint] = []
    discarded: str | None = None  # a diverged network given up on: why

    @property
    def losses(self) -> list[float]:
        """Its training loss per epoch."""
        return list(self.history.get("loss", []))

    @property
    def scored(self) -> Candidate:
        """Its candidate (a network that converged is always scored)."""
        if self.candidate is None:
            raise PhaseResultError("the network's record has no scored candidate")
        return self.candidate
