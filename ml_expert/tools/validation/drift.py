"""Input drift: training statistics as aggregates, and tests of new data against them.

The package stores only aggregates of the training split: for a numeric column a quantile
sketch (QUANTILES points) and the missing rate, for a categorical column the share of each
category seen in training. No training row is stored. New data is compared with the two-sample
Kolmogorov–Smirnov test against the sketch (numeric, many-valued) and the population
stability index over the training categories plus "other" (categorical and few-valued numeric).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT

QUANTILES = 1001
"""Quantile points per numeric column: the sketch's CDF is exact to 1/1000 at each point."""
DISCRETE_VALUES = 10
"""A numeric column with at most this many distinct training values (counts, codes) is
compared like a categorical one (PSI over its values): KS assumes a continuous distribution."""
PSI_EPSILON = 1e-4
"""Floor on a bin's share so an empty bin gives a large, finite PSI term instead of infinity."""
PSI_DRIFT = 0.2
"""The usual reading of PSI: < 0.1 stable, 0.1–0.2 moderate shift, > 0.2 significant shift."""
KS_ALPHA = 0.01
"""A numeric column drifts when the KS p-value is below this (1 %: many columns are tested)."""
DRIFT_STATS_FORMAT = "ml-expert-drift-stats/1"


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def training_statistics(columns: list[dict[str, Any]], values: dict[str, list[Any]]) -> dict[str, Any]:
    """`columns` as in schema.json; `values[name]` the training split's values of that column."""
    out: dict[str, Any] = {"format": DRIFT_STATS_FORMAT, "columns": {}}
    for col in columns:
        name = col["name"]
        raw = values[name]
        if col["kind"] == "numeric":
            arr = np.asarray(raw, dtype=np.float64)
            finite = arr[np.isfinite(arr)]
            entry: dict[str, Any] = {
                "kind": "numeric",
                "count": int(len(arr)),
                "missing_rate": float(1 - len(finite) / len(arr)) if len(arr) else 0.0,
            }
            if len(np.unique(finite)) <= DISCRETE_VALUES:
                entry["shares"] = _shares([_number_text(v) for v in arr])
            else:
                # inverted_cdf: every point is an observed value, so rounded data keeps its ties
                entry["quantiles"] = np.quantile(
                    finite, np.linspace(0, 1, QUANTILES), method="inverted_cdf"
                ).tolist()
            out["columns"][name] = entry
        else:
            texts = ["" if _is_missing(v) else str(v) for v in raw]
            out["columns"][name] = {"kind": "categorical", "count": len(texts), "shares": _shares(texts)}
    return out


def _shares(texts: list[str]) -> dict[str, float]:
    """Category shares; a value seen on fewer than MIN_CATEGORY_COUNT training rows is pooled into
    "__other__", so no value that identifies a training row is stored (the model's encoder has
    the same rule)."""
    cats, counts = np.unique(np.asarray(texts, dtype=object).astype(str), return_counts=True)
    shares: dict[str, float] = {}
    for cat, n in zip(cats, counts, strict=True):
        key = str(cat) if n >= MIN_CATEGORY_COUNT else "__other__"
        shares[key] = shares.get(key, 0.0) + float(n / len(texts))
    return shares


def _number_text(value: Any) -> str:
    """A discrete numeric value as a category label (3.0 -> "3", NaN -> "")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(number):
        return ""
    return str(int(number)) if number.is_integer() else repr(number)


def psi(expected: dict[str, float], observed: dict[str, float]) -> float:
    keys = set(expected) | set(observed)
    total = 0.0
    for k in keys:
        e = max(expected.get(k, 0.0), PSI_EPSILON)
        o = max(observed.get(k, 0.0), PSI_EPSILON)
        total += (o - e) * math.log(o / e)
    return float(total)


def compare(stats: dict[str, Any], values: dict[str, list[Any]]) -> dict[str, Any]:
    """Drift of each column of new data against the training statistics."""
    from scipy import stats as sps

    report: dict[str, Any] = {}
    for name, ref in stats["columns"].items():
        raw = values.get(name)
        if raw is None or len(raw) == 0:
            report[name] = {"kind": ref["kind"], "rows": 0, "drift": None, "note": "no new values"}
            continue
        if ref["kind"] == "numeric" and "shares" in ref:
            report[name] = {
                "kind": "numeric (discrete)",
                **_psi_entry(ref["shares"], [_number_text(v) for v in raw]),
            }
            continue
        if ref["kind"] == "numeric":
            arr = np.asarray([np.nan if _is_missing(v) else v for v in raw], dtype=np.float64)
            finite = arr[np.isfinite(arr)]
            if not ref.get("quantiles") or not len(finite):
                report[name] = {
                    "kind": "numeric",
                    "rows": len(arr),
                    "drift": None,
                    "note": "no finite values",
                }
                continue
            # Two-sample KS against the sketch as a stand-in sample of the training values:
            # it handles tied values (fares, rounded ages) correctly, where a one-sample test
            # against an interpolated CDF over-counts every tie; the sketch's size (QUANTILES)
            # as the reference sample size keeps the p-value conservative.
            result = sps.ks_2samp(finite, np.asarray(ref["quantiles"], dtype=np.float64))
            report[name] = {
                "kind": "numeric",
                "rows": int(len(arr)),
                "test": "ks",
                "statistic": float(result.statistic),
                "p_value": float(result.pvalue),
                "missing_rate": float(1 - len(finite) / len(arr)),
                "training_missing_rate": ref["missing_rate"],
                "drift": bool(result.pvalue < KS_ALPHA),
            }
        else:
            texts = ["" if _is_missing(v) else str(v) for v in raw]
            report[name] = {"kind": "categorical", **_psi_entry(ref["shares"], texts)}
    drifted = sorted(k for k, v in report.items() if v.get("drift"))
    return {"columns": report, "drifted": drifted, "ks_alpha": KS_ALPHA, "psi_threshold": PSI_DRIFT}


def _psi_entry(shares: dict[str, float], texts: list[str]) -> dict[str, Any]:
    """PSI over the training categories; values never seen in training pool into "__other__"."""
    observed: dict[str, float] = {}
    for t in texts:
        key = t if t in shares else "__other__"
        observed[key] = observed.get(key, 0.0) + 1.0 / len(texts)
    value = psi(shares, observed)
    return {
        "rows": len(texts),
        "test": "psi",
        "psi": value,
        "unseen_share": observed.get("__other__", 0.0),
        "drift": bool(value > PSI_DRIFT),
    }
