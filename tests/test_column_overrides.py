"""--keep / --drop: the user overrides the heuristics that drop columns (and may drop one).

A feature that alone predicts 99 % of the labels is a leakage suspect and is dropped; with
--keep it stays in, the decision is recorded and the data gate reports it instead of refusing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_expert.agents.ml_developer.preparation import data_result
from ml_expert.errors import DataError
from ml_expert.graph.gates import data_gate
from ml_expert.tools.data.prepare import prepare_data


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    y = (x + rng.normal(scale=1.0, size=n) > 0).astype(int)
    strong = np.where(rng.random(n) < 0.99, y, 1 - y)  # a legitimate signal a heuristic calls leakage
    frame = pd.DataFrame(
        {
            "x": x,
            "noise": rng.normal(size=n),
            "strong": strong.astype(str),
            "row_id": np.arange(n),
            "target": y,
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def _gate(prepared) -> bool:
    """The data gate on the result the data-preparation node hands on (its typed model)."""
    return data_gate({"data": data_result(prepared).state()}).passed


def test_heuristics_drop_and_keep_overrides(table: Path, tmp_path: Path) -> None:
    default = prepare_data(str(table), "target", 1, tmp_path / "a")
    assert "strong" in default.leakage_suspects and "strong" not in default.input_schema.names
    assert "row_id" in default.dropped_columns and "row_id" not in default.input_schema.names

    kept = prepare_data(str(table), "target", 1, tmp_path / "b", keep=["strong", "row_id"], drop=["noise"])
    names = set(kept.input_schema.names)
    assert {"strong", "row_id", "x"} <= names and "noise" not in names
    assert kept.kept_columns["strong"].startswith("leakage suspect")
    assert kept.kept_columns["row_id"].startswith("ID-like")
    assert kept.dropped_columns["noise"] == "dropped by the user (--drop)"
    assert _gate(kept), "a suspect the user kept is reported, not refused"
    assert kept.fingerprint == default.fingerprint  # the data as given, whatever the user drops


def test_unknown_column_is_a_data_error(table: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--keep 'nope'"):
        prepare_data(str(table), "target", 1, tmp_path / "c", keep=["nope"])
    with pytest.raises(DataError, match="--drop 'target'"):
        prepare_data(str(table), "target", 1, tmp_path / "d", drop=["target"])


def test_imbalance_ratio_comes_from_training_rows(tmp_path: Path) -> None:
    """It picks the metric and the class weights: a decision, so no test row may count in it."""
    from ml_expert.tools.data.prepare import load_split

    rng = np.random.default_rng(1)
    y = np.array([0] * 100 + [1] * 31)
    frame = pd.DataFrame({"x": rng.normal(size=len(y)) + y, "z": rng.normal(size=len(y)), "target": y})
    frame.to_csv(tmp_path / "imb.csv", index=False)
    prepared = prepare_data(str(tmp_path / "imb.csv"), "target", 0, tmp_path / "p")
    _, train_y = load_split(prepared.files, "train", prepared.input_schema, prepared.file_hashes)
    counts = np.bincount(train_y)
    assert prepared.profile["imbalance_ratio"] == round(counts.max() / counts.min(), 3)
    assert prepared.profile["imbalance_ratio"] != round(100 / 31, 3)  # the ratio over all rows
