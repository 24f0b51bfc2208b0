"""Phase 1 guarantees: fit on train only, outliers from the training split, images, datetimes."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from ml_expert.runtime import inference as runtime_module
from ml_expert.tools.data.cleaning import drop_outliers
from ml_expert.tools.data.loading import load_source
from ml_expert.tools.data.prepare import TARGET_COLUMN, prepare_data
from ml_expert.tools.data.preprocessing import build_preprocessor
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, datetime_part, to_model_frame
from ml_expert.tools.deployment.exports import export_sklearn
from ml_expert.tools.deployment.package import write_package


def _mixed(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "teal"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    size = rng.normal(10, 3, n).round(3)
    size[rng.random(n) < 0.1] = np.nan
    y = np.where((colour == "red") | (np.nan_to_num(size, nan=10) > 12), "yes", "no")
    return pd.DataFrame({"colour": colour, "size": size, "weight": rng.gamma(2, 2, n).round(3), "target": y})


def _fitted_state(prepared) -> dict:
    pre = joblib.load(prepared.files["preprocessor"])
    num = pre.named_transformers_["num"]
    cat = pre.named_transformers_["cat"]
    return {
        "median": num.named_steps["impute"].statistics_.tolist(),
        "mean": num.named_steps["scale"].mean_.tolist(),
        "scale": num.named_steps["scale"].scale_.tolist(),
        "groups": [list(c) for c in cat.named_steps["group"].categories_],
        "mode": cat.named_steps["impute"].statistics_.tolist(),
        "onehot": [list(c) for c in cat.named_steps["onehot"].categories_],
    }


def test_changing_validation_and_test_rows_changes_nothing_fitted(tmp_path: Path) -> None:
    frame = _mixed()
    frame["flag"] = 1  # constant: dropped; varying it on held-out rows only must not bring it back
    first = tmp_path / "a.csv"
    frame.to_csv(first, index=False)
    a = prepare_data(str(first), "target", 3, tmp_path / "a")
    held_out = pd.concat([pd.read_parquet(a.files["val"]), pd.read_parquet(a.files["test"])]).index
    assert len(held_out) > 50
    changed = frame.copy()
    changed.loc[held_out, "size"] = changed.loc[held_out, "size"] * 100 + 7
    changed.loc[held_out, "weight"] = -changed.loc[held_out, "weight"] - 1000  # no new duplicates
    changed.loc[held_out, "colour"] = np.where(np.arange(len(held_out)) % 2, "violet", "teal")
    changed.loc[held_out, "flag"] = np.arange(len(held_out)) % 3
    second = tmp_path / "b.csv"
    changed.to_csv(second, index=False)
    b = prepare_data(str(second), "target", 3, tmp_path / "b")

    assert _fitted_state(a) == _fitted_state(b)
    assert a.input_schema == b.input_schema
    assert a.dropped_columns == b.dropped_columns and "flag" in a.dropped_columns
    assert a.leakage_suspects == b.leakage_suspects
    pd.testing.assert_frame_equal(pd.read_parquet(a.files["train"]), pd.read_parquet(b.files["train"]))
    np.testing.assert_array_equal(np.load(a.files["X_train"]), np.load(b.files["X_train"]))
    assert a.outliers == b.outliers
    # The held-out rows really changed (so the test could fail).
    assert not np.array_equal(np.load(a.files["X_val"]), np.load(b.files["X_val"]))


def test_outliers_dropped_from_training_split_only_and_never_from_a_rare_class() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = np.where(np.arange(n) < 24, 1, 0)  # class 1: 6% of the rows, rare
    x = rng.normal(0, 1, n)
    x[[0, 1, 2]] = 50.0  # rare-class outliers: kept
    x[[100, 101, 102, 103]] = -40.0  # majority-class outliers: dropped
    train = pd.DataFrame({"x": x, "flag": rng.integers(0, 2, n).astype(float), TARGET_COLUMN: y})
    kept, report = drop_outliers(train, ["x", "flag"], TARGET_COLUMN, "classification")
    assert report.dropped == 4 and report.kept_rare_class == 3 and report.rare_classes == [1]
    assert report.columns_checked == 1  # a 0/1 column is not measured by z-score
    assert {0, 1, 2} <= set(kept.index) and not {100, 101, 102, 103} & set(kept.index)
    assert len(kept) == n - 4


def test_outlier_report_in_prepared_data_leaves_val_and_test_untouched(tmp_path: Path) -> None:
    frame = _mixed(300, seed=2)
    frame.loc[:9, "weight"] = 500.0
    path = tmp_path / "o.csv"
    frame.to_csv(path, index=False)
    kept = prepare_data(str(path), "target", 0, tmp_path / "kept")  # the default: flag, keep
    assert kept.outliers.dropped == 0 and kept.outliers.flagged >= 1
    assert kept.split_sizes.total == 300 and "--drop-outliers" in kept.outliers.action
    prepared = prepare_data(str(path), "target", 0, tmp_path / "data", drop_outliers_rows=True)
    val, test = pd.read_parquet(prepared.files["val"]), pd.read_parquet(prepared.files["test"])
    assert prepared.outliers.dropped >= 1
    assert prepared.split_sizes.total + prepared.outliers.dropped == 300
    assert len(val) == len(test) == 45  # 15% each of 300, as without any removal
    assert any(f["finding"].startswith("outliers") and "dropped" in f["action"] for f in prepared.findings)


def test_every_finding_says_what_was_done(tmp_path: Path) -> None:
    frame = _mixed()
    frame["copy"] = frame["size"] * 2 + 1
    frame["const"] = "x"
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    prepared = prepare_data(str(path), "target", 0, tmp_path / "data")
    assert prepared.findings and all(f["action"] for f in prepared.findings)
    names = {f["finding"] for f in prepared.findings}
    assert {"missing values", "categorical column", "highly correlated pair", "class balance"} <= names
    assert {"constant column"} <= names
    for column, profile in prepared.profile["column_profiles"].items():
        assert set(profile) >= {"dtype", "missing", "distinct"}, column


DATETIME_TEXTS = [
    "2024-02-29",
    "2024-02-30",
    "1999-12-31 23:59:59",
    "2024-03-05T13:45",
    " 2021-07-04 08:00:00.250 ",
    "2024-13-01",
    "05/03/2024",
    "2024-03-05 24:00:00",
    "2024-03-05T13:45:00Z",
    "2024-03-05 13:45:00+02:00",
    pd.Timestamp("2024-03-05 13:45:10"),
    pd.NaT,
    __import__("datetime").date(2024, 3, 5),
    "",
    None,
]


def test_datetime_parts_match_the_serving_runtime_value_for_value() -> None:
    for text in DATETIME_TEXTS:
        for part in ("year", "month", "day", "weekday", "hour", "epoch_days"):
            ours = datetime_part(text, part)
            theirs = runtime_module._datetime_part(text, part)
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs, (text, part)
    assert datetime_part("1970-01-02 12:00", "epoch_days") == 1.5
    assert datetime_part("2024-03-04", "weekday") == 0.0  # a Monday
    assert datetime_part(pd.Timestamp("2024-03-05 13:45"), "hour") == 13.0
    assert datetime_part("2024-03-05T13:45:00Z", "hour") == 13.0  # wall-clock time, zone ignored


def test_datetime_features_survive_onnx_export_and_model_inference(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 160
    when = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    frame = pd.DataFrame({"when": when.strftime("%Y-%m-%d"), "v": rng.normal(size=n)})
    frame["target"] = (when.month >= 7).astype(int)
    parts = ["year", "month", "day", "weekday", "epoch_days"]
    columns = [ColumnSpec(name="when", kind="numeric", derive=p) for p in parts]
    schema = InputSchema(
        task="classification",
        target="target",
        columns=[*columns, ColumnSpec(name="v", kind="numeric")],
        classes=[0, 1],
    )
    pipeline = Pipeline([("pre", build_preprocessor(schema)), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(to_model_frame(frame, schema), frame["target"])
    rows = frame.head(40).copy()
    rows.loc[rows.index[:3], "when"] = ["not a date", None, "2024-02-30"]
    records = export_sklearn(pipeline, schema, rows, tmp_path / "exports")
    assert records[1].passed, records[1].error
    write_package(tmp_path / "deployment", records[1].path, schema, {"model_name": "logreg"})
    spec = importlib.util.spec_from_file_location("deployed_dates", tmp_path / "deployment" / "inference.py")
    deployed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deployed)
    model = deployed.ModelInference(tmp_path / "deployment")
    expected = pipeline.predict_proba(to_model_frame(rows, schema))
    np.testing.assert_allclose(model.predict_proba(rows.to_dict(orient="records")), expected, atol=1e-5)
    with pytest.raises(deployed.SchemaError, match="date/time text"):
        model.predict({"when": 20240101, "v": 1.0})


def _digits_folder(root: Path, datasets: Path) -> tuple[Path, pd.DataFrame]:
    digits = pd.read_csv(datasets / "digits.csv")
    chosen = pd.concat([digits[digits["target"] == d].head(12) for d in (0, 1, 7)])
    for i, (_, row) in enumerate(chosen.iterrows()):
        folder = root / f"digit{int(row['target'])}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (row.drop("target").to_numpy(dtype=np.uint8) * 15).reshape(8, 8)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i:03d}.png")
    (root / "digit0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "digit1" / "notes.txt").write_text("not an image, not counted")
    return root, chosen


def test_image_folder_of_real_pngs(tmp_path: Path, datasets: Path) -> None:
    folder, chosen = _digits_folder(tmp_path / "digits", datasets)
    frame, _, info = load_source(str(folder), "label")
    assert info.format == "image-folder" and info.image_shape == [8, 8, 1]
    assert info.images_read == 36 and info.images_skipped == 1
    assert list(frame.columns[:3]) == ["pixel_0_0", "pixel_0_1", "pixel_0_2"] and frame.shape == (36, 65)
    ordered = frame.sort_values(list(frame.columns[:-1])).reset_index(drop=True)
    source = chosen.drop(columns="target") * 15
    source.columns = frame.columns[:-1]
    source = source.sort_values(list(source.columns)).reset_index(drop=True)
    np.testing.assert_array_equal(ordered[frame.columns[:-1]].to_numpy(), source.to_numpy())

    prepared = prepare_data(str(folder), "label", 0, tmp_path / "data")
    assert prepared.modality == "image" and prepared.image_shape == [8, 8, 1]
    assert prepared.input_schema.classes == ["digit0", "digit1", "digit7"]
    assert prepared.n_features_out == 64
    assert any(f["finding"] == "unreadable images" and f["figure"] == 1 for f in prepared.findings)


def test_image_folder_mixed_sizes_and_colour_is_resized_to_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            size = (100, 80) if i else (50, 40)
            array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(array, mode="RGB").save(tmp_path / "imgs" / label / f"{i}.jpg")
    frame, _, info = load_source(str(tmp_path / "imgs"))
    # The most common size 100x80, scaled so its longer side is 64: 64x51, RGB.
    assert info.image_shape == [51, 64, 3] and frame.shape == (24, 51 * 64 * 3 + 1)
    assert "24 of 24 images resized" in info.image_resize


def _prepared_files(tmp_path: Path, rows: dict[str, int], width: int) -> dict:
    """Finite split arrays and a preprocessor file, as the preparation writes them."""
    from ml_expert.hashing import sha256_file

    files = {}
    for split, n in rows.items():
        files[f"X_{split}"] = str(tmp_path / f"X_{split}.npy")
        np.save(files[f"X_{split}"], np.random.default_rng(0).normal(size=(n, width)))
    files["preprocessor"] = str(tmp_path / "preprocessor.joblib")
    Path(files["preprocessor"]).write_bytes(b"fitted")
    return {
        "files": files,
        "n_features_out": width,
        "preprocessor_sha256": sha256_file(files["preprocessor"]),
    }


def _result(fields: dict) -> dict:
    """A complete data-phase result (DataResult): the fields a test sets, the rest filled in."""
    from ml_expert.phases import DataResult
    from ml_expert.tools.data.schema import ColumnSpec, InputSchema

    task = fields.get("task", "regression")
    schema = InputSchema(
        task=task,
        target="y",
        columns=[ColumnSpec(name=n, kind="numeric") for n in fields.get("features", ["a"])],
        classes=fields.get("classes"),
    )
    base = {"source": "rows.csv", "fingerprint": "f" * 16, "task": task, "task_reason": "set by the test"}
    return DataResult.model_validate({**base, "schema": schema.model_dump(), **fields}).state()


def test_data_gate_refuses_unvalidated_or_leaky_data_with_figures(tmp_path: Path) -> None:
    from ml_expert.graph.gates import data_gate

    good = _result(
        {
            **_prepared_files(tmp_path, {"train": 70, "val": 15}, 2),
            "task": "classification",
            "rows_in": 110,
            "rows_without_target": 2,
            "duplicates_removed": 3,
            "outliers_removed": 5,
            "split_sizes": {"train": 70, "val": 15, "test": 15},
            "splits_disjoint": True,
            "classes": ["no", "yes"],
            "train_class_counts": {"0": 40, "1": 30},
            "features": ["a", "b"],
            "leakage_suspects": {"c": "copy of the target"},
            "dropped_columns": {"c": "leakage suspect: copy of the target"},
        }
    )
    verdict = data_gate({"data": good})
    assert verdict.passed, verdict.failed
    checks = {c.name: c for c in verdict.checks}
    assert checks["rows_accounted"].value == {
        "rows_in": 110,
        "kept": 100,
        "dropped": {"without_target": 2, "duplicates": 3, "rare_classes": 0, "outliers_in_train": 5},
    }
    assert checks["rows_per_class"].value == {"no": 40, "yes": 30}
    assert checks["no_leakage_suspects"].value == {"c": "copy of the target"}

    leaky = {**good, "features": ["a", "c"], "rows_in": 111, "splits_disjoint": False}
    verdict = data_gate({"data": leaky})
    assert not verdict.passed
    assert {f.split(":")[0] for f in verdict.failed} == {
        "rows_accounted",
        "splits_disjoint",
        "no_leakage_suspects",
    }
    assert not data_gate({"data": {}}).passed
    renamed = {**good, "rows": good["rows_in"]}  # a renamed key is refused, not read as a default
    del renamed["rows_in"]
    refused = data_gate({"data": renamed})
    assert refused.failed and refused.failed[0].startswith("result_typed") and "rows_in" in refused.failed[0]


def test_data_gate_reopens_the_prepared_arrays(tmp_path: Path) -> None:
    """`validated` used to be set True by the preparation and read back by the gate: it could
    never fail. The gate now re-reads the arrays and the preprocessor itself."""
    from ml_expert.graph.gates import data_gate

    data = _result(
        {
            **_prepared_files(tmp_path, {"train": 70, "val": 15}, 3),
            "rows_in": 100,
            "split_sizes": {"train": 70, "val": 15, "test": 15},
            "splits_disjoint": True,
            "features": ["a"],
        }
    )
    check = next(c for c in data_gate({"data": data}).checks if c.name == "validated")
    assert check.passed, check
    broken = np.load(data["files"]["X_train"])
    broken[3, 1] = np.nan
    np.save(data["files"]["X_train"], broken)
    check = next(c for c in data_gate({"data": data}).checks if c.name == "validated")
    assert not check.passed and "non-finite" in check.detail
    np.save(data["files"]["X_train"], np.zeros((70, 3)))
    Path(data["files"]["preprocessor"]).write_bytes(b"swapped")
    check = next(c for c in data_gate({"data": data}).checks if c.name == "validated")
    assert not check.passed and "preprocessor changed" in check.detail
    assert not next(
        c for c in data_gate({"data": {**data, "n_features_out": 4}}).checks if c.name == "validated"
    ).passed


def test_categories_are_spelt_the_same_in_training_and_serving() -> None:
    """Training coerced NaT to "NaT" and float32 NaN to "nan" where serving sent "": a missing
    value seen in serving then matched no category the model was fitted with."""
    import ml_expert.runtime.inference as runtime_module

    values = [None, np.nan, np.float32("nan"), pd.NaT, pd.NA, 3.0, np.float32(3.0), 7, "a", True]
    schema = InputSchema(
        task="classification", target="y", columns=[ColumnSpec(name="c", kind="categorical")]
    )
    trained = to_model_frame(pd.DataFrame({"c": pd.Series(values, dtype=object)}), schema)["c"].tolist()
    served = [runtime_module.category_text(v) for v in values]
    assert trained == served == ["", "", "", "", "", "3", "3", "7", "a", "True"]
