"""The seams that still read a phase's record by string key read it through its model (issue 13):
a misspelt or missing key is refused, naming the field, where `.get(key)` used to read None and
go on (the release compared nothing, the summary left the rows out)."""

from __future__ import annotations

from typing import Any

import pytest
from phase_helpers import deployment_result, validation_result

from ml_expert.errors import PhaseResultError

SIZES = {"train": 70, "val": 15, "test": 15}


def _release_state(tmp_path, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "options": {"workspace": str(tmp_path), "seed": 3},
        "data": data,
        "validation": validation_result(),
        "deployment": deployment_result(),
    }


def test_the_release_gate_reads_the_test_rows_typed(tmp_path) -> None:
    from ml_expert.graph.gates import release_gate

    def production_check(data: dict[str, Any]) -> Any:
        checks = {c.name: c for c in release_gate(_release_state(tmp_path, data)).checks}
        return checks["not_worse_than_production"]

    assert production_check({"fingerprint": "f" * 64, "split_sizes": SIZES}).passed  # no production yet
    misspelt = {"fingerprint": "f" * 64, "split_sizes": {"train": 70, "valid": 15, "test": 15}}
    for broken, field in ((misspelt, "split_sizes"), ({"split_sizes": SIZES}, "fingerprint")):
        check = production_check(broken)
        assert not check.passed and field in check.detail, check.detail


def test_the_registry_candidate_record_reads_the_test_rows_typed(tmp_path) -> None:
    from ml_expert.registry import candidate_record

    state = _release_state(tmp_path, {"fingerprint": "f" * 64, "split_sizes": SIZES, "task": "regression"})
    record = candidate_record(state)
    assert record["split_sizes"] == SIZES and record["data_fingerprint"] == "f" * 64 and record["seed"] == 3
    with pytest.raises(PhaseResultError, match="split_sizes"):
        candidate_record(_release_state(tmp_path, {"fingerprint": "f" * 64, "split_size": SIZES}))


def _analysis(**fields: Any) -> dict[str, Any]:
    """A data-analysis finding as the preparation writes it (the keys the summary reads)."""
    return {
        "source": "wine.csv",
        "fingerprint": "f" * 64,
        "task": "classification",
        "features": ["a", "b"],
        "split_sizes": SIZES,
        "preprocessor_sha256": "0" * 64,
        "profile": {"rows": 100},
        **fields,
    }


def test_the_summary_reads_the_data_finding_typed() -> None:
    from ml_expert.memory.summary import build_summary

    summary = build_summary("r", {"data-analysis": _analysis()})
    assert "wine.csv (100 rows, 2 features)" in summary.text and summary.task == "classification"
    broken = _analysis(split_sizes={"train": 70, "validation": 15, "test": 15})
    with pytest.raises(PhaseResultError, match="split_sizes"):
        build_summary("r", {"data-analysis": broken})
