"""The records inside the phase results are typed (issue 13, one typed core): a record written with a
misspelt or renamed key is refused when it is validated, naming it, where a dict read by key used to
take it and a later phase read a default; the state written before they were typed (plain dicts with
the same keys) still validates, and dumps to the same JSON, so a checkpointed run resumes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ml_expert.phases import DataResult, PhaseResultError
from ml_expert.tools.data.schema import ColumnSpec, InputSchema


def _data_state(**fields: Any) -> dict[str, Any]:
    """A data-phase result as the previous code wrote it to the state (plain JSON)."""
    schema = InputSchema(task="regression", target="y", columns=[ColumnSpec(name="a", kind="numeric")])
    return {
        "source": "rows.csv",
        "fingerprint": "f" * 16,
        "task": "regression",
        "task_reason": "set by the test",
        "schema": schema.model_dump(),
        "features": ["a"],
        "n_features_out": 1,
        "rows_in": 100,
        "split_sizes": {"train": 70, "val": 15, "test": 15},
        "splits_disjoint": True,
        "files": {},
        "preprocessor_sha256": "0" * 64,
        **fields,
    }


def test_split_sizes_are_typed_and_old_state_reads_the_same() -> None:
    old = _data_state()
    data = DataResult.of({"data": old})
    assert (data.split_sizes.train, data.split_sizes.val, data.split_sizes.test) == (70, 15, 15)
    assert data.split_sizes.total == 100
    assert data.state()["split_sizes"] == {"train": 70, "val": 15, "test": 15}  # the same JSON
    misspelt = _data_state(split_sizes={"trian": 70, "val": 15, "test": 15})
    missing = _data_state(split_sizes={"train": 70, "test": 15})
    for broken in (misspelt, missing):
        with pytest.raises(PhaseResultError, match="split_sizes"):
            DataResult.of({"data": broken})


def test_the_data_gate_refuses_misspelt_split_sizes_instead_of_judging_a_default() -> None:
    from ml_expert.graph.gates import data_gate

    verdict = data_gate({"data": _data_state(split_sizes={"train": 70, "validation": 15, "test": 15})})
    assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
    assert "split_sizes" in verdict.checks[0].detail
