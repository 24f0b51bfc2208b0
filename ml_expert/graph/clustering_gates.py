"""The validation gate's clustering checks: better than chance, sizes, stability."""

from __future__ import annotations

from ml_expert.graph.verdict import Check
from ml_expert.tools.validation.clustering import ALPHA, MIN_STABILITY, NULL_RESAMPLES
from ml_expert.tools.validation.clustering_checks import ClusteringChecks


def clustering_checks(found: ClusteringChecks) -> list[Check]:
    """A clustering ships only when it beats structureless data, its clusters are not degenerate
    and its assignment survives resampling (`found`: ValidationResult.clustering, the figures of
    tools/validation/clustering.py)."""
    checks = []
    for test in found.chance:
        checks.append(
            Check(
                name=f"better_than_chance_{test.reference}",
                passed=test.passed,
                value=test.p_value,
                threshold=ALPHA,
                detail=f"training-row silhouette {test.observed} vs {NULL_RESAMPLES} {test.reference} "
                f"structureless data sets (mean {test.null_mean}, max {test.null_max}): "
                f"p = {test.p_value}",
            )
        )
    if not found.chance:
        checks.append(Check(name="better_than_chance", passed=False, detail="the test was not run"))
    checks.append(
        Check(
            name="cluster_sizes",
            passed=found.sizes_ok,
            value={"train": found.train_sizes, "test": found.test_sizes},
            detail=found.sizes_detail,
        )
    )
    stable = found.stability
    checks.append(
        Check(
            name="stability",
            passed=stable >= MIN_STABILITY,
            value=stable,
            threshold=MIN_STABILITY,
            detail="mean adjusted Rand index of the test rows' assignment across bootstrap refits",
        )
    )
    return checks
