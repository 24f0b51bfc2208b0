"""The tester's tools for a clustering: the criterion on unseen rows, sizes, stability, a test
against chance, and profiles of each cluster that hold aggregates only.

The test against chance (refuse a clustering no better than structureless data): the same
configuration (family, k) is fit on NULL_RESAMPLES data sets with no cluster structure, each as
large as the training rows it is compared with, and its in-sample silhouette is compared with the
shipped model's silhouette on those training rows (in-sample on both sides: like for like). Two
references, both must be beaten:

- permuted: every column shuffled on its own; keeps each column's distribution (a one-hot stays
  0/1), breaks the dependence between columns that clusters make;
- Gaussian: one Gaussian with the rows' mean and covariance; keeps the correlations (an
  elongated single cloud is still one cluster, however well k-means cuts it).

p = (1 + #{null silhouette >= observed}) / (1 + NULL_RESAMPLES); the clustering passes when
p <= ALPHA for both. The training rows are used, not the test rows, for power: a 15% test split
of a small table (23 rows of iris) cannot tell two clusters from one elongated cloud. The test
rows give the unseen-row figures: silhouette, sizes and stability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import clone
from sklearn.metrics import calinski_harabasz_score
from threadpoolctl import threadpool_limits

from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.selection.clustering import (
    FIT_MAX_ROWS,
    MIN_CLUSTER_ROWS,
    STABILITY_RESAMPLES,
    davies_bouldin,
    silhouette,
    stability,
)
from ml_expert.tools.validation.clustering_checks import ChanceTest, ClusteringChecks
from ml_expert.tools.validation.metrics import HeldOutMetrics

if TYPE_CHECKING:
    from ml_expert.tools.validation.report_inputs import ClusteringReportInputs

NULL_RESAMPLES = 39
CHANCE_MAX_ROWS = 1000
"""The test against chance uses a seeded sample of this many training rows at most (78 refits)."""
ALPHA = 0.05
MIN_STABILITY = 0.5
"""Mean adjusted Rand index across bootstrap refits below which the assignment is not
reproducible: half the pairwise agreement beyond chance is lost when the rows change."""
PROFILE_TOP_CATEGORIES = 5


class _Measured(BaseModel):
    test_metrics: HeldOutMetrics


class ClusteringEvaluation(ClusteringChecks, _Measured):
    """Every figure of the evaluation: the test metrics first, then the checks the validation
    result keeps (clustering_checks.py), then the profiles (fields in that order, as written)."""

    model_config = ConfigDict(extra="ignore")

    profiles: list[dict[str, Any]] = Field(default_factory=list)

    def checks(self) -> ClusteringChecks:
        """What the validation result keeps and its gate reads."""
        return ClusteringChecks.model_validate(self.model_dump(exclude={"test_metrics", "profiles"}))


def split_pipeline(pipeline: Any) -> tuple[Any, Any]:
    """(the fitted preprocessing, the fitted model) of a shipped clustering Pipeline."""
    return pipeline[:-1], pipeline.steps[-1][1]


def null_data(x: np.ndarray, reference: str, rng: np.random.Generator) -> np.ndarray:
    if reference == "permuted":
        return np.column_stack([rng.permutation(x[:, j]) for j in range(x.shape[1])]).astype(np.float32)
    mean = x.mean(axis=0)
    cov = np.cov(x.astype(np.float64), rowvar=False).reshape(x.shape[1], x.shape[1])
    return rng.multivariate_normal(mean, cov, size=len(x), method="eigh").astype(np.float32)


def chance_tests(model: Any, x_train: np.ndarray, seed: int) -> list[ChanceTest]:
    """The shipped clustering's silhouette on (a sample of) its training rows against both
    structureless references of the same size."""
    index = np.random.default_rng(seed).permutation(len(x_train))[:CHANCE_MAX_ROWS]
    x = x_train[np.sort(index)]
    observed = silhouette(x, np.asarray(model.predict(x)).ravel(), seed)
    results = []
    for offset, reference in enumerate(("permuted", "gaussian")):
        rng = np.random.default_rng(seed + 1000 * (offset + 1))
        nulls = []
        for _ in range(NULL_RESAMPLES):
            data = null_data(x, reference, rng)
            fitted = clone(model).fit(data)
            nulls.append(silhouette(data, fitted.predict(data), seed))
        values = np.asarray(nulls)
        p = float((1 + (values >= observed).sum()) / (1 + NULL_RESAMPLES))
        results.append(
            ChanceTest(
                reference=reference,
                observed=round(observed, 6),
                null_mean=round(float(values.mean()), 6),
                null_max=round(float(values.max()), 6),
                p_value=round(p, 6),
                passed=p <= ALPHA,
            )
        )
    return results


def size_check(
    train_labels: np.ndarray, test_labels: np.ndarray, k: int
) -> tuple[list, list, list, bool, str]:
    """Every cluster holds >= MIN_CLUSTER_ROWS training rows; the test rows use >= 2 clusters; no
    cluster whose training share predicts >= MIN_CLUSTER_ROWS test rows is empty on test."""
    train_sizes = np.bincount(train_labels, minlength=k)
    test_sizes = np.bincount(test_labels, minlength=k)
    expected = train_sizes / max(train_sizes.sum(), 1) * len(test_labels)
    empty = [int(c) for c in range(k) if test_sizes[c] == 0 and expected[c] >= MIN_CLUSTER_ROWS]
    used = int((test_sizes > 0).sum())
    ok = bool(train_sizes.min() >= MIN_CLUSTER_ROWS and used >= 2 and not empty)
    detail = (
        f"{k} clusters; smallest holds {int(train_sizes.min())} training rows "
        f"(>= {MIN_CLUSTER_ROWS} needed); "
        f"{used} used by the test rows"
        + (f"; empty on test though expected >= {MIN_CLUSTER_ROWS} rows: {empty}" if empty else "")
    )
    return (
        [int(v) for v in train_sizes],
        [int(v) for v in test_sizes],
        [round(float(v), 2) for v in expected],
        ok,
        detail,
    )


def cluster_profiles(frame: pd.DataFrame, labels: np.ndarray, schema: InputSchema) -> list[dict[str, Any]]:
    """Each cluster described by the original columns, from the training rows.

    Aggregates only, each over >= MIN_CATEGORY_COUNT rows (tools/data/privacy.py): a cluster with
    fewer rows gets its size alone; a category is named only when it holds that many of the
    cluster's rows. Word and token features of free text are left out (one flag per word).
    """
    profiles = []
    k = int(labels.max()) + 1 if len(labels) else 0
    for c in range(k):
        rows = frame[labels == c]
        entry: dict[str, Any] = {"cluster": c, "rows": len(rows), "share": round(len(rows) / len(frame), 4)}
        if len(rows) < MIN_CATEGORY_COUNT:
            entry["note"] = f"fewer than {MIN_CATEGORY_COUNT} training rows: no figures"
            profiles.append(entry)
            continue
        numeric: dict[str, Any] = {}
        categorical: dict[str, Any] = {}
        for col in schema.columns:
            if col.derive in ("word", "token"):
                continue
            label = f"{col.name} ({col.derive})" if col.derive else col.name
            values = rows[col.key]
            if col.kind == "numeric":
                present = pd.to_numeric(values, errors="coerce").dropna()
                if len(present) < MIN_CATEGORY_COUNT:
                    continue
                q25, q50, q75 = np.quantile(present, [0.25, 0.5, 0.75])
                numeric[label] = {
                    "mean": _r(present.mean()),
                    "std": _r(present.std()),
                    "p25": _r(q25),
                    "median": _r(q50),
                    "p75": _r(q75),
                    "overall_mean": _r(pd.to_numeric(frame[col.key], errors="coerce").mean()),
                }
            else:
                counts = values.astype(str).replace("", "(missing)").value_counts()
                kept = counts[counts >= MIN_CATEGORY_COUNT].head(PROFILE_TOP_CATEGORIES)
                categorical[label] = {str(v): round(int(n) / len(rows), 4) for v, n in kept.items()}
        entry["numeric"] = numeric
        entry["categorical"] = categorical
        profiles.append(entry)
    return profiles


def evaluate_clustering(
    pipeline: Any, schema: InputSchema, train_frame: pd.DataFrame, test_frame: pd.DataFrame, seed: int
) -> ClusteringEvaluation:
    """Every figure the validation gate and the report need, from one read of the test rows."""
    features, model = split_pipeline(pipeline)
    with threadpool_limits(limits=1):
        x_train = np.asarray(features.transform(train_frame), dtype=np.float32)
        x_test = np.asarray(features.transform(test_frame), dtype=np.float32)
        train_labels = np.asarray(model.predict(x_train)).ravel()
        test_labels = np.asarray(model.predict(x_test)).ravel()
        k = int(getattr(model, "n_clusters", getattr(model, "n_components", 0)))
        observed = silhouette(x_test, test_labels, seed)
        present = len(np.unique(test_labels))
        metrics = {
            "silhouette": round(observed, 6),
            "davies_bouldin": davies_bouldin(x_test, test_labels),
            "calinski_harabasz": round(float(calinski_harabasz_score(x_test, test_labels)), 4)
            if 2 <= present < len(x_test)
            else None,
            "n_clusters": k,
            "test_rows": len(x_test),
        }
        train_sizes, test_sizes, expected, sizes_ok, detail = size_check(train_labels, test_labels, k)
        fit_rows = x_train[np.random.default_rng(seed).permutation(len(x_train))[:FIT_MAX_ROWS]]
        stable = stability(model, fit_rows, x_test, seed, STABILITY_RESAMPLES)
        metrics["stability"] = round(stable, 6)
        chance = chance_tests(model, x_train, seed)
    return ClusteringEvaluation(
        test_metrics=metrics,
        train_sizes=train_sizes,
        test_sizes=test_sizes,
        expected_test_sizes=expected,
        sizes_ok=sizes_ok,
        sizes_detail=detail,
        stability=round(stable, 6),
        chance=chance,
        profiles=cluster_profiles(train_frame, train_labels, schema),
    )


def render_clustering_report(info: ClusteringReportInputs) -> str:
    """The evaluation report of a clustering run (markdown, aggregates only)."""
    ev = info.evaluation
    m = ev.test_metrics
    sizes = info.split_sizes
    lines = [
        f"# Evaluation report: run {info.run_id}",
        "",
        f"- Task: **clustering**; data: `{info.source}` (fingerprint `{info.fingerprint[:16]}`)",
        f"- Rows: train {sizes.train}, validation {sizes.val}, "
        f"test {sizes.test} (split seeded, unstratified: there is no label)",
        f"- Chosen: **{info.chosen}** with k = {m.n_clusters}: {info.choice_reason}",
        f"- Criterion: {info.metric_reason}",
        f"- Test split read {info.test_reads} time(s)",
        "",
        "## Test split (rows no model saw)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| silhouette (higher is better, -1..1; single cluster = 0) | {_f(m.silhouette)} |",
        f"| Davies–Bouldin (lower is better) | {_f(m.davies_bouldin)} |",
        f"| Calinski–Harabasz (higher is better) | {_f(m.calinski_harabasz)} |",
        f"| stability: mean ARI across {STABILITY_RESAMPLES} bootstrap refits (>= {MIN_STABILITY}) "
        f"| {_f(ev.stability)} |",
        "",
        f"## Better than chance ({NULL_RESAMPLES} structureless data sets per reference, p <= {ALPHA})",
        "",
        "The shipped model's silhouette on its training rows (at most "
        f"{CHANCE_MAX_ROWS}) against the same configuration fit on data as large with no cluster "
        "structure: columns permuted independently, and one Gaussian with the rows' mean and "
        "covariance.",
        "",
        "| reference | observed silhouette (training rows) | null mean | null max | p | passed |",
        "|---|---|---|---|---|---|",
        *[
            f"| {c.reference} | {_f(c.observed)} | {_f(c.null_mean)} | {_f(c.null_max)} | {_f(c.p_value)} "
            f"| {'yes' if c.passed else 'no'} |"
            for c in ev.chance
        ],
        "",
        "## Cluster sizes",
        "",
        ev.sizes_detail,
        "",
        "| cluster | training rows | test rows | expected test rows |",
        "|---|---|---|---|",
        *[
            f"| {c} | {a} | {b} | {e} |"
            for c, (a, b, e) in enumerate(
                zip(ev.train_sizes, ev.test_sizes, ev.expected_test_sizes, strict=True)
            )
        ],
        "",
        "## Candidates (validation split)",
        "",
        "| candidate | k | silhouette | Davies–Bouldin | stability | train silhouette | shipped? |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {c.name} | {c.k} | {_f(c.val_score)} | {_f(c.davies_bouldin)} "
            f"| {_f(c.stability)} | {_f(c.train_score)} "
            f"| {'yes' if c.name == info.chosen else (c.why_not_shipped or 'no')} |"
            for c in info.leaderboard
        ],
        "",
        f"## Cluster profiles (training rows; aggregates over >= {MIN_CATEGORY_COUNT} rows only)",
        "",
    ]
    for profile in ev.profiles:
        lines.append(f"### Cluster {profile['cluster']}: {profile['rows']} rows ({profile['share']:.1%})")
        lines.append("")
        if profile.get("note"):
            lines += [profile["note"], ""]
            continue
        if profile["numeric"]:
            lines += ["| column | mean | median | p25..p75 | overall mean |", "|---|---|---|---|---|"]
            for name, s in profile["numeric"].items():
                lines.append(
                    f"| {name} | {_f(s['mean'])} | {_f(s['median'])} | {_f(s['p25'])}..{_f(s['p75'])} "
                    f"| {_f(s['overall_mean'])} |"
                )
            lines.append("")
        for name, shares in profile["categorical"].items():
            shown = ", ".join(f"{v}: {s:.0%}" for v, s in shares.items()) or "no category on enough rows"
            lines.append(f"- {name}: {shown}")
        if profile["categorical"]:
            lines.append("")
    if info.decisions:
        lines += ["## Decisions", ""]
        lines += [f"- **{d.decision}**: {d.reason}" for d in info.decisions]
    return "\n".join(lines) + "\n"


def _r(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def _f(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
