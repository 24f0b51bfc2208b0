"""Code counts: how many training rows share a row's code, found on the training rows, stored only
for codes at least MIN_CATEGORY_COUNT rows share, computed the same in training, ONNX's feed and the
serving runtime, and kept only when they measurably help."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_composite_codes import served_like_fitted

from ml_expert.runtime.inference import code_count
from ml_expert.tools.data.counts import find_count_columns
from ml_expert.tools.data.measure import measure_added_columns
from ml_expert.tools.data.prepare import prepare_data
from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame

SEED = 0


def parties(rows: int, seed: int = SEED, signal: bool = True) -> pd.DataFrame:
    """Customers of shops with 1 to 30 customers each; with `signal`, busy shops' customers return.

    Each shop is its own code (over a hundred: one-hot keeps 30), so only how many rows share it
    carries the shop's size."""
    rng = np.random.default_rng(seed)
    shops: list[str] = []
    size_of_row: list[int] = []
    shop = 0
    while len(shops) < rows:
        size = int(rng.integers(1, 31))
        shops += [f"S{seed}-{shop:05d}"] * size
        size_of_row += [size] * size
        shop += 1
    size_arr = np.array(size_of_row[:rows], dtype=float)
    age = rng.normal(30, 10, rows).round()
    logit = (0.2 * (size_arr - 15)) if signal else 0.05 * (age - 30)
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    order = rng.permutation(rows)
    return pd.DataFrame({"ticket": np.array(shops[:rows])[order], "age": age[order], "target": target[order]})


def test_a_count_is_computed_the_same_in_training_and_serving() -> None:
    from ml_expert.runtime import inference

    assert code_count is inference.code_count  # one function on both sides
    spec = ColumnSpec(name="ticket", kind="numeric", derive="count", counts={"A": 7, "3": 5})
    schema = InputSchema(task="classification", target="t", columns=[spec], classes=[0, 1])
    frame = pd.DataFrame({"ticket": ["A", 3.0, "never seen", None]})
    got = to_model_frame(frame, schema)["ticket__count"].tolist()
    assert got[:3] == [7.0, 5.0, 0.0] and math.isnan(got[3])  # 3.0 is spelt "3", as a category is


def test_only_codes_enough_rows_share_are_stored() -> None:
    frame = parties(900)
    specs, rules = find_count_columns(frame, ["ticket"])
    assert len(specs) == 1 and specs[0].derive == "count" and specs[0].kind == "numeric"
    counts = specs[0].counts or {}
    assert counts and min(counts.values()) >= MIN_CATEGORY_COUNT  # no row's own rare code is stored
    shared = frame["ticket"].value_counts()
    assert set(counts) == set(shared[shared >= MIN_CATEGORY_COUNT].index)
    assert "distinct codes" in rules["ticket"]
    few = pd.DataFrame({"city": [f"c{i % 20}" for i in range(400)]})  # one-hot holds all 20
    assert find_count_columns(few, ["city"]) == ([], {})
    unique = pd.DataFrame({"id": [f"id{i}" for i in range(400)]})  # nothing shared
    assert find_count_columns(unique, ["id"]) == ([], {})


def test_counts_stay_only_when_they_beat_the_margin() -> None:
    base = [ColumnSpec(name="age", kind="numeric")]
    for signal, expected in ((True, True), (False, False)):
        frame = parties(1500, signal=signal)
        schema = InputSchema(task="classification", target="target", columns=base, classes=[0, 1])
        specs, _ = find_count_columns(frame, ["ticket"])
        kept, rule = measure_added_columns(
            frame, frame["target"].to_numpy(), schema, specs, "accuracy", SEED, "the code counts"
        )
        assert kept is expected, rule
        assert "margin" in rule and "5-fold CV" in rule


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("counts")
    parties(2000).to_csv(root / "parties.csv", index=False)
    return prepare_data(str(root / "parties.csv"), "target", SEED, root / "data"), root


def test_prepare_keeps_the_counts_of_training_rows(prepared) -> None:
    data, _ = prepared
    assert data.code_counts is not None and data.code_counts.kept, data.code_counts
    spec = next(c for c in data.input_schema.columns if c.derive == "count")
    train = pd.read_parquet(data.files["train"])
    stored = spec.counts or {}
    # counted on the training rows: never more than the whole file, mostly fewer, at most len(train)
    whole = pd.read_csv(prepared[1] / "parties.csv")["ticket"].value_counts()
    assert all(n <= whole[code] for code, n in stored.items())
    assert sum(n < whole[code] for code, n in stored.items()) > len(stored) / 2
    assert sum(stored.values()) <= len(train)
    schema_json = json.loads(data.input_schema.model_dump_json())
    assert all(min(c["counts"].values()) >= MIN_CATEGORY_COUNT for c in schema_json["columns"] if c["counts"])


def test_counts_round_trip_through_onnx_and_the_package(prepared, tmp_path: Path) -> None:
    data, _ = prepared
    rows = parties(40, seed=7).drop(columns=["target"]).astype({"ticket": object})
    stored = next(c for c in data.input_schema.columns if c.derive == "count").counts or {}
    rows.loc[0, "ticket"] = next(iter(stored))  # a code training rows share
    rows.loc[1, "ticket"] = None  # missing
    rows.loc[2, "ticket"] = 12345  # a number, never seen
    served_like_fitted(data, rows, tmp_path)
