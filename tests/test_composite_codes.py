"""Composite codes (`Deck/Num/Side`, `gggg_pp`): found on the training rows, split statelessly into
parts in training, in ONNX's feed and in the serving runtime alike, kept only when they measurably
help, and robust to unseen, malformed and missing codes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_expert.runtime.inference import ModelInference, _part_number
from ml_expert.tools.data.composite import find_composites, measure_composites
from ml_expert.tools.data.prepare import prepare_data
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, composite_part, to_model_frame
from ml_expert.tools.deployment.exports import export_sklearn
from ml_expert.tools.deployment.package import write_package
from ml_expert.tools.selection.candidates import make_pipeline

SEED = 0


def spaceship(rows: int, seed: int = SEED, signal: bool = True) -> pd.DataFrame:
    """A Spaceship-Titanic-like table: the class depends on the cabin's deck and side (when `signal`)."""
    rng = np.random.default_rng(seed)
    deck = rng.choice(list("ABCDEFG"), rows)
    side = rng.choice(["P", "S"], rows)
    number = rng.integers(0, 1500, rows)
    group = rng.permutation(rows)[:rows] + 1
    member = rng.integers(1, 4, rows)
    age = rng.normal(30, 10, rows).round()
    if signal:
        logit = 2.5 * (np.isin(deck, ["B", "C"]).astype(float) - 0.3) + 1.5 * (side == "S") - 0.75
    else:  # the age alone decides: the codes are noise
        logit = 0.3 * (age - 30)
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit - 0.02 * (age - 30)))).astype(int)
    return pd.DataFrame(
        {
            "PassengerId": [f"{g:04d}_{m:02d}" for g, m in zip(group, member, strict=True)],
            "Cabin": [f"{d}/{n}/{s}" for d, n, s in zip(deck, number, side, strict=True)],
            "Age": age,
            "target": target,
        }
    )


def test_a_part_is_split_the_same_in_training_and_serving() -> None:
    # one function splits on both sides (runtime/inference.py, re-exported by tools/data/schema.py)
    from ml_expert.runtime import inference

    assert composite_part is inference.composite_part
    assert composite_part("B/0/P", "/", 1) == "0" and composite_part("B//P", "/", 1) is None
    assert composite_part("weird", "/", 2) is None and composite_part(None, "/", 0) is None
    frame = pd.DataFrame({"Cabin": ["B/7/P", "x/abc/S", None]})
    spec = ColumnSpec(name="Cabin", kind="numeric", derive="part", position=1, separator="/")
    schema = InputSchema(task="classification", target="t", columns=[spec], classes=[0, 1])
    got = to_model_frame(frame, schema)[spec.key if spec.key else "Cabin__p1"].tolist()
    mirrored = [_part_number(composite_part(v, "/", 1)) for v in frame["Cabin"]]
    assert got[0] == mirrored[0] == 7.0 and all(math.isnan(v) for v in got[1:] + mirrored[1:])
    deck = ColumnSpec(name="Cabin", kind="categorical", derive="part", position=0, separator="/")
    schema = InputSchema(task="classification", target="t", columns=[deck], classes=[0, 1])
    assert to_model_frame(frame, schema)["Cabin__p0"].tolist() == ["B", "x", ""]  # missing is "", not NaN


def test_composites_are_found_on_training_rows_with_typed_parts() -> None:
    found = {c.name: c for c in find_composites(spaceship(600), ["PassengerId", "Cabin"])}
    cabin = found["Cabin"]
    assert cabin.separator == "/" and cabin.parts == 3
    assert [(p.position, p.kind) for p in cabin.kept_parts] == [
        (0, "categorical"),
        (1, "numeric"),
        (2, "categorical"),
    ]
    passenger = found["PassengerId"]
    assert passenger.separator == "_" and [p.kind for p in passenger.kept_parts] == ["numeric", "numeric"]
    plain = pd.DataFrame({"city": [f"town{i % 50}" for i in range(200)]})
    assert find_composites(plain, ["city"]) == []  # no separator: not a composite code


def test_parts_stay_only_when_they_beat_the_margin() -> None:
    base = [ColumnSpec(name="Age", kind="numeric")]
    for signal, expected in ((True, True), (False, False)):
        frame = spaceship(1000, signal=signal)
        schema = InputSchema(task="classification", target="target", columns=base, classes=[0, 1])
        found = find_composites(frame, ["PassengerId", "Cabin"])
        decision = measure_composites(frame, frame["target"].to_numpy(), schema, found, "accuracy", SEED)
        assert decision.kept is expected, decision.rule
        assert "margin" in decision.rule and "5-fold CV" in decision.rule


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("composite")
    frame = spaceship(1500)
    frame.to_csv(root / "ship.csv", index=False)
    return prepare_data(str(root / "ship.csv"), "target", SEED, root / "data"), root


def test_prepare_splits_the_cabin_from_training_categories_only(prepared) -> None:
    data, _ = prepared
    assert data.composite_codes is not None and data.composite_codes.kept, data.composite_codes
    parts = [c for c in data.input_schema.columns if c.derive == "part"]
    assert {(c.name, c.position) for c in parts} >= {("Cabin", 0), ("Cabin", 2)}
    deck = next(c for c in parts if c.name == "Cabin" and c.position == 0)
    train = pd.read_parquet(data.files["train"])
    assert set(deck.categories or []) <= set(train[deck.key])  # categories from the training rows
    assert "PassengerId" in data.dropped_columns  # the whole id is still not a feature


def test_split_codes_round_trip_through_onnx_and_the_package(prepared, tmp_path: Path) -> None:
    data, root = prepared
    rows = spaceship(40, seed=7).drop(columns=["target"])
    rows.loc[0, "Cabin"] = "Z/9999/Q"  # unseen deck and side
    rows.loc[1, "Cabin"] = "weird"  # malformed: one part only
    rows.loc[2, "Cabin"] = None  # missing
    rows.loc[3, "PassengerId"] = "abcd_ef"  # non-numeric parts
    served_like_fitted(data, rows, tmp_path)


def served_like_fitted(data, rows: pd.DataFrame, tmp_path: Path) -> None:
    """LightGBM fit on the prepared training split: every export verifies, and the package (ONNX
    through inference.py, raw rows in) gives the probabilities the pipeline gives on the same rows'
    model frame."""
    schema = data.input_schema
    train = pd.read_parquet(data.files["train"])
    pipeline = make_pipeline("lightgbm", schema, SEED, rows=len(train))
    pipeline.fit(train[schema.keys], train["__target__"].to_numpy())
    records = export_sklearn(pipeline, schema, rows, tmp_path / "exports")
    assert all(r.passed for r in records), [(r.format, r.error, r.parity) for r in records]
    deploy = tmp_path / "deployment"
    metadata = {"model_name": "lightgbm", "metrics": {}, "seed": SEED, "data_fingerprint": "0" * 64}
    write_package(deploy, records[1].path, schema, metadata)
    served = ModelInference(deploy).predict_proba(rows)
    expected = pipeline.predict_proba(to_model_frame(rows, schema))
    np.testing.assert_allclose(served, expected, atol=1e-4)
