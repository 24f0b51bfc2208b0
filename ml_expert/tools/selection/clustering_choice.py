"""What the researcher records of a clustering's selection: the criterion, the k searched, the
figures of each family and the choice with its reason. Pydantic only, so the selection result
(ml_expert/phases.py) holds it typed without importing scikit-learn; tools/selection/clustering.py
measures it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CRITERION = "silhouette"
CRITERION_REASON = (
    "clustering has no label: the mean silhouette on the validation rows (how much closer each row "
    "is to its own cluster than to the next one, -1..1) ranks the candidates; when two are within "
    "2 standard errors of the paired per-row difference, the lower Davies–Bouldin index wins"
)


class ClusteringChoice(BaseModel):
    """The selection result's `clustering`: every figure the choice was made on, and why."""

    model_config = ConfigDict(extra="forbid")

    criterion: str = CRITERION
    criterion_reason: str = CRITERION_REASON
    k_range: list[int]
    k_rule: str
    kmeans_by_k: list[dict[str, Any]]
    gmm_by_k: list[dict[str, Any]]
    density: dict[str, Any]
    chosen: str
    choice_reason: str
    comparison: dict[str, Any] = Field(default_factory=dict)
    fit_rows: int = Field(description="training rows the candidates were fit on (at most FIT_MAX_ROWS)")
