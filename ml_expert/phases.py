"""Typed phase results: what one phase hands the next, validated when a node starts.

The graph's checkpointed state stays plain JSON (small, readable by any LangGraph checkpointer);
these models are its contract. A node reads `DataResult.of(state)`, never `state["data"]["key"]`:
a renamed or missing key fails at the start of the node that needs it, with the field's name,
instead of a later phase reading a default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml_expert.tools.data.schema import InputSchema


class PhaseResultError(ValueError):
    """A phase result is missing or does not match its model (a defect, not a user error)."""


class DataResult(BaseModel):
    """The data-preparation phase's result: the prepared splits (as hashed files) and the figures
    every later phase and gate needs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

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

    @classmethod
    def of(cls, state: dict[str, Any]) -> DataResult:
        """The data phase's result in `state`, validated."""
        raw = state.get("data")
        if not isinstance(raw, dict):
            raise PhaseResultError("the data-preparation result is missing from the state")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise PhaseResultError(f"the data-preparation result does not match its model: {exc}") from exc

    def state(self) -> dict[str, Any]:
        """The JSON the graph's state keeps (the schema under its key `schema`)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def n_classes(self) -> int:
        """Classes seen in the training rows (0 for regression and clustering)."""
        return len(self.train_class_counts) if self.task == "classification" else 0
