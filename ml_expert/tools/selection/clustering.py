"""Clustering candidates, measured on the validation split by a stated internal criterion.

k-means over a range of k, a Gaussian mixture whose k is chosen by BIC, and a density-based
method (DBSCAN, eps from the knee of the k-distance curve). Every candidate is fit on the
training rows and scored on the validation rows by the mean silhouette; Davies–Bouldin and the
stability of the assignment across bootstrap resamples are recorded beside it and break ties.
The dummy is a single cluster (silhouette 0 by convention: no separation at all).

Each shipped model is one scikit-learn Pipeline (fitted preprocessing, float32 cast, model), so
the preprocessing that was fit on the training split travels into every export.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from skl2onnx.sklapi import CastTransformer
from sklearn.base import clone
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_samples
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ml_expert.hashing import sha256_file
from ml_expert.tools.data.preprocessing import build_preprocessor
from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.selection.clustering_choice import ClusteringChoice

MAX_K = 10
MIN_CLUSTER_ROWS = MIN_CATEGORY_COUNT
"""A cluster needs this many training rows: fewer is degenerate, and a centre (or mean) of fewer
rows would bring one training row's values close to the artifact (tools/data/privacy.py)."""
SILHOUETTE_MAX_ROWS = 2000
"""Silhouette is quadratic in the rows: past this many it is computed on a seeded sample."""
STABILITY_RESAMPLES = 10
DENSITY_MAX_ROWS = 5000
"""DBSCAN's neighbourhood search is quadratic in the worst case: a seeded sample past this."""
FULL_COVARIANCE_MAX_FEATURES = 20
GMM_REG_COVAR = 1e-4
"""Added to the covariance diagonal: one-hot columns are nearly constant within a cluster."""
TIE_STANDARD_ERRORS = 2.0
FIT_MAX_ROWS = 20_000
"""Candidates are fit on a seeded sample of this many training rows at most: 20 000 rows place
10 centres (or mixture components) well, and every k, resample and refit stays seconds on 2 cores."""


class ClusterCandidate(BaseModel):
    """One clustering candidate with every figure it was judged on (validation unless named)."""

    name: str
    family: str
    kind: str = "sklearn"
    k: int | None = None
    val_score: float = Field(description="mean silhouette on the validation rows")
    train_score: float = Field(description="mean silhouette on the training rows")
    davies_bouldin: float | None = None
    stability: float | None = Field(
        default=None, description="mean adjusted Rand index of the validation assignment across refits"
    )
    train_cluster_sizes: list[int] = Field(default_factory=list)
    fit_seconds: float = 0.0
    shippable: bool = True
    why_not_shipped: str | None = None
    path: str | None = None
    sha256: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class ClusteringSelection(ClusteringChoice):
    """What the researcher measured and chose, every figure recorded, with the scored candidates."""

    model_config = ConfigDict(extra="ignore")

    leaderboard: list[ClusterCandidate]

    def choice(self) -> ClusteringChoice:
        """What the selection result keeps (the candidates are its leaderboard)."""
        return ClusteringChoice.model_validate(self.model_dump(exclude={"leaderboard"}))


def k_range(train_rows: int) -> tuple[list[int], str]:
    """k from 2 to min(MAX_K, sqrt(n)), and never so many that a cluster could hold fewer than
    MIN_CLUSTER_ROWS training rows on average."""
    upper = min(MAX_K, int(math.isqrt(max(train_rows, 0))), train_rows // MIN_CLUSTER_ROWS)
    upper = max(upper, 2)
    rule = (
        f"k = 2..min({MAX_K}, sqrt({train_rows} training rows), {train_rows}/{MIN_CLUSTER_ROWS}) = 2..{upper}"
    )
    return list(range(2, upper + 1)), rule


def fit_features(schema: InputSchema, frame: Any) -> Pipeline:
    """The fitted preprocessing (imputation, scaling, one-hot) and float32 cast the models share."""
    pre = Pipeline(
        [
            ("pre", build_preprocessor(schema, scale=True, word_ids=False)),
            ("cast", CastTransformer(dtype=np.float32)),
        ]
    )
    return pre.fit(frame)


def as_pipeline(features: Pipeline, model: Any) -> Pipeline:
    """The shipped object: the fitted preprocessing steps then the fitted model."""
    return Pipeline([*features.steps, ("model", model)])


def silhouette_rows(x: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray | None:
    """Per-row silhouettes (on a seeded sample past SILHOUETTE_MAX_ROWS); None with < 2 clusters."""
    index = _sample(len(x), SILHOUETTE_MAX_ROWS, seed)
    x, labels = x[index], labels[index]
    present = np.unique(labels)
    if len(present) < 2 or len(present) >= len(x):
        return None
    return silhouette_samples(x.astype(np.float64), labels)


def silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Mean silhouette; 0.0 (no separation, the single-cluster dummy's value) with < 2 clusters."""
    rows = silhouette_rows(x, labels, seed)
    return 0.0 if rows is None else float(rows.mean())


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    return float(davies_bouldin_score(x.astype(np.float64), labels))


def make_model(family: str, k: int, seed: int, n_features: int) -> Any:
    if family == "kmeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed)
    covariance = "full" if n_features <= FULL_COVARIANCE_MAX_FEATURES else "diag"
    return GaussianMixture(
        n_components=k, covariance_type=covariance, n_init=2, reg_covar=GMM_REG_COVAR, random_state=seed
    )


def stability(model: Any, x_train: np.ndarray, x_eval: np.ndarray, seed: int, resamples: int) -> float:
    """Mean adjusted Rand index between the model's assignment of `x_eval` and the assignments of
    the same configuration refit on bootstrap resamples of the training rows (1 = identical)."""
    reference = model.predict(x_eval)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(resamples):
        index = rng.integers(0, len(x_train), len(x_train))
        refit = clone(model).fit(x_train[index])
        scores.append(adjusted_rand_score(reference, refit.predict(x_eval)))
    return float(np.mean(scores))


def knee_eps(x: np.ndarray, min_samples: int) -> tuple[float, dict[str, Any]]:
    """eps at the knee of the sorted k-distance curve (k = min_samples): the point farthest from
    the straight line joining the curve's ends, both axes scaled to 0..1."""
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(x).kneighbors(x)
    curve = np.sort(distances[:, -1])
    span = curve[-1] - curve[0]
    if span <= 0:
        return float(curve[-1]) or 1e-6, {"knee_index": len(curve) - 1, "rule": "flat k-distance curve"}
    xs = np.linspace(0.0, 1.0, len(curve))
    ys = (curve - curve[0]) / span
    knee = int(np.argmax(xs - ys))  # the convex curve lies below its chord; farthest point below it
    return float(curve[knee]) or 1e-6, {
        "knee_index": knee,
        "rows": len(curve),
        "rule": f"distance to the {min_samples}th neighbour, sorted; knee = farthest point from the chord",
    }


def density_candidate(
    x_train: np.ndarray, x_val: np.ndarray, seed: int
) -> tuple[ClusterCandidate, dict[str, Any]]:
    """DBSCAN on the training rows, extended to validation rows by their nearest core point.

    Measured, never shipped: its only way to label a new row is by the nearest core point, and
    the core points are training rows, which may not appear in any artifact.
    """
    started = time.perf_counter()
    index = _sample(len(x_train), DENSITY_MAX_ROWS, seed)
    x = x_train[index].astype(np.float64)
    min_samples = max(MIN_CLUSTER_ROWS, min(2 * x.shape[1], 20))
    min_samples = min(min_samples, len(x) - 1)
    eps, knee = knee_eps(x, min_samples)
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(x)
    labels = model.labels_
    core = model.core_sample_indices_
    found = sorted(set(labels.tolist()) - {-1})
    figures: dict[str, Any] = {
        "min_samples": min_samples,
        "min_samples_rule": f"max({MIN_CLUSTER_ROWS}, min(2 x {x.shape[1]} features, 20))",
        "eps": round(eps, 6),
        "eps_rule": knee["rule"],
        "rows_used": len(x),
        "clusters": len(found),
        "noise_share": round(float((labels == -1).mean()), 4),
    }
    why = (
        "labels a new row by its nearest core point, and the core points are training rows: "
        "shipping it would put training rows in the artifact"
    )
    if len(found) < 2 or len(core) == 0:
        figures["note"] = f"found {len(found)} cluster(s): no density structure at this eps"
        candidate = ClusterCandidate(
            name="dbscan",
            family="density",
            k=len(found),
            val_score=0.0,
            train_score=0.0,
            fit_seconds=round(time.perf_counter() - started, 3),
            shippable=False,
            why_not_shipped=why,
            params={"eps": figures["eps"], "min_samples": min_samples},
        )
        return candidate, figures
    nearest = NearestNeighbors(n_neighbors=1).fit(x[core])
    val_labels = labels[core][nearest.kneighbors(x_val.astype(np.float64), return_distance=False)[:, 0]]
    clustered = labels != -1
    sizes = [int((labels == c).sum()) for c in found]
    candidate = ClusterCandidate(
        name="dbscan",
        family="density",
        k=len(found),
        val_score=round(silhouette(x_val, val_labels, seed), 6),
        train_score=round(silhouette(x[clustered], labels[clustered], seed), 6),
        davies_bouldin=_round(davies_bouldin(x_val, val_labels)),
        train_cluster_sizes=sizes,
        fit_seconds=round(time.perf_counter() - started, 3),
        shippable=False,
        why_not_shipped=why,
        params={"eps": figures["eps"], "min_samples": min_samples},
    )
    figures["validation_extension"] = "each validation row takes the cluster of its nearest core point"
    return candidate, figures


def select_clustering(
    schema: InputSchema, train_frame: Any, val_frame: Any, seed: int, models_dir: Path
) -> ClusteringSelection:
    """Fit every candidate on train, score it on validation, choose by the stated rule."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(limits=1):  # small fits on a few busy cores: threads only spin
        return _select(schema, train_frame, val_frame, seed, models_dir)


def _select(
    schema: InputSchema, train_frame: Any, val_frame: Any, seed: int, models_dir: Path
) -> ClusteringSelection:
    features = fit_features(schema, train_frame)
    x_train = np.asarray(features.transform(train_frame), dtype=np.float32)
    x_train = x_train[_sample(len(x_train), FIT_MAX_ROWS, seed)]
    x_val = np.asarray(features.transform(val_frame), dtype=np.float32)
    ks, k_rule = k_range(len(x_train))
    d = x_train.shape[1]

    kmeans_rows: list[dict[str, Any]] = []
    kmeans_fits: dict[int, tuple[Any, float]] = {}
    for k in ks:
        started = time.perf_counter()
        model = make_model("kmeans", k, seed, d).fit(x_train)
        seconds = time.perf_counter() - started
        kmeans_fits[k] = (model, seconds)
        kmeans_rows.append(_figures(model, k, x_train, x_val, seed, seconds, inertia=float(model.inertia_)))
    gmm_rows: list[dict[str, Any]] = []
    gmm_fits: dict[int, tuple[Any, float]] = {}
    for k in ks:
        started = time.perf_counter()
        model = make_model("gmm", k, seed, d).fit(x_train)
        seconds = time.perf_counter() - started
        gmm_fits[k] = (model, seconds)
        gmm_rows.append(_figures(model, k, x_train, x_val, seed, seconds, bic=float(model.bic(x_train))))

    board: list[ClusterCandidate] = [
        ClusterCandidate(
            name="dummy",
            family="dummy",
            k=1,
            val_score=0.0,
            train_score=0.0,
            train_cluster_sizes=[len(x_train)],
            shippable=False,
            why_not_shipped="a single cluster is the yardstick, never shipped",
        )
    ]
    sized_k = [r for r in kmeans_rows if r["smallest_train_cluster"] >= MIN_CLUSTER_ROWS]
    if sized_k:
        best = max(sized_k, key=lambda r: (r["val_silhouette"], -r["k"]))
        model, seconds = kmeans_fits[best["k"]]
        board.append(
            _candidate("kmeans", "centroid", model, best, features, x_train, x_val, seed, seconds, models_dir)
        )
    sized_g = [r for r in gmm_rows if r["smallest_train_cluster"] >= MIN_CLUSTER_ROWS]
    if sized_g:
        best = min(sized_g, key=lambda r: (r["bic"], r["k"]))
        model, seconds = gmm_fits[best["k"]]
        board.append(
            _candidate(
                "gaussian_mixture",
                "mixture",
                model,
                best,
                features,
                x_train,
                x_val,
                seed,
                seconds,
                models_dir,
            )
        )
    density, density_figures = density_candidate(x_train, x_val, seed)
    board.append(density)
    chosen, reason, comparison = choose(board, x_val, kmeans_fits, gmm_fits, seed)
    return ClusteringSelection(
        k_range=ks,
        k_rule=k_rule,
        kmeans_by_k=kmeans_rows,
        gmm_by_k=gmm_rows,
        density=density_figures,
        leaderboard=board,
        chosen=chosen,
        choice_reason=reason,
        comparison=comparison,
        fit_rows=len(x_train),
    )


def choose(
    board: list[ClusterCandidate],
    x_val: np.ndarray,
    kmeans_fits: dict[int, tuple[Any, float]],
    gmm_fits: dict[int, tuple[Any, float]],
    seed: int,
) -> tuple[str, str, dict[str, Any]]:
    """The shippable candidate with the best validation silhouette; a tie within
    TIE_STANDARD_ERRORS paired standard errors goes to the lower Davies–Bouldin index."""
    ranked = sorted((c for c in board if c.shippable), key=lambda c: c.val_score, reverse=True)
    if not ranked:
        return "dummy", "no candidate has >= 2 clusters of >= MIN_CLUSTER_ROWS training rows", {}
    leader = ranked[0]
    reason = f"best validation silhouette {leader.val_score:.4f} among the shippable candidates"
    comparison: dict[str, Any] = {}
    if len(ranked) > 1:
        runner = ranked[1]
        fits = {"kmeans": kmeans_fits, "gaussian_mixture": gmm_fits}
        a = silhouette_rows(x_val, fits[leader.name][leader.k][0].predict(x_val), seed)
        b = silhouette_rows(x_val, fits[runner.name][runner.k][0].predict(x_val), seed)
        if a is not None and b is not None:
            diff = a - b
            se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
            tie = float(diff.mean()) <= TIE_STANDARD_ERRORS * se
            comparison = {
                "leader": leader.name,
                "runner_up": runner.name,
                "mean_difference": round(float(diff.mean()), 6),
                "standard_error": round(se, 6),
                "tie": tie,
            }
            if tie and runner.davies_bouldin is not None and leader.davies_bouldin is not None:
                if runner.davies_bouldin < leader.davies_bouldin:
                    reason = (
                        f"{leader.name} and {runner.name} tie on validation silhouette "
                        f"(difference {diff.mean():.4f} within {TIE_STANDARD_ERRORS:g} x SE {se:.4f}); "
                        f"{runner.name} has the lower Davies–Bouldin ({runner.davies_bouldin:.4f} < "
                        f"{leader.davies_bouldin:.4f})"
                    )
                    leader = runner
                else:
                    reason += (
                        f"; tie with {runner.name} (difference {diff.mean():.4f} within "
                        f"{TIE_STANDARD_ERRORS:g} x SE {se:.4f}) broken by the lower Davies–Bouldin "
                        f"({leader.davies_bouldin:.4f} <= {runner.davies_bouldin:.4f})"
                    )
            elif not tie:
                reason += (
                    f"; ahead of {runner.name} by {diff.mean():.4f} >= {TIE_STANDARD_ERRORS:g} x SE {se:.4f}"
                )
    density = next((c for c in board if c.family == "density"), None)
    if density and density.val_score > leader.val_score:
        reason += (
            f"; {density.name} scored higher ({density.val_score:.4f}) but is not shipped: "
            f"{density.why_not_shipped}"
        )
    return leader.name, reason, comparison


def _figures(
    model: Any, k: int, x_train: np.ndarray, x_val: np.ndarray, seed: int, seconds: float, **extra: float
) -> dict[str, Any]:
    train_labels = model.predict(x_train)
    val_labels = model.predict(x_val)
    sizes = np.bincount(train_labels, minlength=k)
    return {
        "k": k,
        "val_silhouette": round(silhouette(x_val, val_labels, seed), 6),
        "train_silhouette": round(silhouette(x_train, train_labels, seed), 6),
        "val_davies_bouldin": _round(davies_bouldin(x_val, val_labels)),
        "smallest_train_cluster": int(sizes.min()),
        "fit_seconds": round(seconds, 3),
        **{name: round(value, 4) for name, value in extra.items()},
    }


def _candidate(
    name: str,
    family: str,
    model: Any,
    figures: dict[str, Any],
    features: Pipeline,
    x_train: np.ndarray,
    x_val: np.ndarray,
    seed: int,
    seconds: float,
    models_dir: Path,
) -> ClusterCandidate:
    pipeline = as_pipeline(features, model)
    path = models_dir / f"{name}.joblib"
    joblib.dump(pipeline, path)
    sizes = np.bincount(model.predict(x_train), minlength=figures["k"])
    params = (
        {"n_clusters": figures["k"]}
        if name == "kmeans"
        else {
            "n_components": figures["k"],
            "covariance_type": model.covariance_type,
        }
    )
    return ClusterCandidate(
        name=name,
        family=family,
        k=figures["k"],
        val_score=figures["val_silhouette"],
        train_score=figures["train_silhouette"],
        davies_bouldin=figures["val_davies_bouldin"],
        stability=round(stability(model, x_train, x_val, seed, STABILITY_RESAMPLES), 6),
        train_cluster_sizes=[int(s) for s in sizes],
        fit_seconds=round(seconds, 3),
        path=str(path),
        sha256=sha256_file(path),
        params=params,
    )


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
