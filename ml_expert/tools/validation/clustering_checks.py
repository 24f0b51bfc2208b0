"""The figures a clustering's validation gate judges (tools/validation/clustering.py measures them):
the test against chance, the cluster sizes and the stability. Pydantic only, so the validation
result (ml_expert/phases.py) holds them typed without importing scikit-learn."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ChanceTest(BaseModel):
    """The shipped model's training-row silhouette against structureless data of one reference."""

    model_config = ConfigDict(extra="forbid")

    reference: str
    observed: float
    null_mean: float
    null_max: float
    p_value: float
    passed: bool


class ClusteringChecks(BaseModel):
    """What the validation result keeps of a clustering's evaluation (`clustering`) and the gate
    reads: the sizes on train and test and whether they hold, the stability, the tests against chance."""

    model_config = ConfigDict(extra="forbid")

    train_sizes: list[int]
    test_sizes: list[int]
    expected_test_sizes: list[float]
    sizes_ok: bool
    sizes_detail: str
    stability: float
    chance: list[ChanceTest]
