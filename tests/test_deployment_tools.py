"""Exports reload and match the trained model; the deployment package verifies and validates.

Real data (titanic for classification, diabetes for regression), real scikit-learn and Keras
models, every export reloaded from disk in a fresh object.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pandas as pd
import pytest
from shared_data import SHARED_DATASETS
from skl2onnx.sklapi import CastTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from ml_expert.tools.data.preprocessing import build_preprocessor, fitted_categories
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame, to_onnx_feed
from ml_expert.tools.deployment.exports import (
    PROBABILITY_TOLERANCE,
    ExportRecord,
    compare,
    export_keras,
    export_sklearn,
)
from ml_expert.tools.deployment.package import write_package

DATASETS = SHARED_DATASETS
TITANIC_NUMERIC = ["pclass", "age", "sibsp", "parch", "fare"]
TITANIC_CATEGORICAL = ["sex", "embarked"]
SEED = 0


# --------------------------------------------------------------------------------------------
# fixtures


def _schema(task: str, frame: pd.DataFrame, numeric: list[str], categorical: list[str], classes=None):
    columns = [ColumnSpec(name=n, kind="numeric") for n in numeric]
    columns += [ColumnSpec(name=n, kind="categorical") for n in categorical]
    schema = InputSchema(task=task, target="target", columns=columns, classes=classes)
    if categorical:  # record the categories the training split has, as the pipeline does
        pre = build_preprocessor(schema).fit(to_model_frame(frame, schema))
        cats = fitted_categories(pre, schema)
        schema = schema.model_copy(
            update={
                "columns": [
                    c.model_copy(update={"categories": cats.get(c.name)}) if c.kind == "categorical" else c
                    for c in schema.columns
                ]
            }
        )
    return schema


@pytest.fixture(scope="module")
def titanic():
    frame = pd.read_csv(DATASETS / "titanic.csv")
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED, stratify=frame["target"])
    classes = sorted(frame["target"].unique().tolist())
    schema = _schema("classification", train, TITANIC_NUMERIC, TITANIC_CATEGORICAL, classes=classes)
    y = train["target"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return schema, train, test, y


@pytest.fixture(scope="module")
def diabetes():
    frame = pd.read_csv(DATASETS / "diabetes.csv")
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED)
    numeric = [c for c in frame.columns if c != "target"]
    schema = _schema("regression", train, numeric, [])
    return schema, train, test, train["target"].to_numpy(dtype=float)


def _pipeline(schema: InputSchema, estimator, scale: bool) -> Pipeline:
    return Pipeline(
        [
            ("pre", build_preprocessor(schema, scale=scale)),
            ("cast", CastTransformer(dtype=np.float32)),
            ("model", estimator),
        ]
    )


@pytest.fixture(scope="module")
def logreg(titanic):
    schema, train, _, y = titanic
    return _pipeline(schema, LogisticRegression(max_iter=1000), scale=True).fit(
        to_model_frame(train, schema), y
    )


def _assert_all_passed(records: list[ExportRecord], formats: list[str]) -> None:
    assert [r.format for r in records] == formats
    for record in records:
        assert record.error is None, f"{record.format}: {record.error}"
        assert record.parity.passed, f"{record.format}: {record.parity}"
        assert record.passed
        assert record.parity.n_rows > 0
        assert record.sha256 and len(record.sha256) == 64
        assert record.size_bytes and record.size_bytes > 0
        assert Path(record.path).exists()


def _onnx_inputs(path: str) -> list[str]:
    model = onnx.load(path)
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


# --------------------------------------------------------------------------------------------
# scikit-learn exports


def test_sklearn_logreg_exports_pass_parity(titanic, logreg, tmp_path):
    schema, _, test, _ = titanic
    records = export_sklearn(logreg, schema, test, tmp_path)
    _assert_all_passed(records, ["joblib", "onnx"])
    onnx_record = records[1]
    assert sorted(_onnx_inputs(onnx_record.path)) == sorted(schema.names)
    assert [o.name for o in onnx.load(onnx_record.path).graph.output] == ["label", "probabilities"]
    assert onnx_record.parity.label_agreement == 1.0
    assert onnx_record.parity.max_abs_diff <= PROBABILITY_TOLERANCE


@pytest.mark.parametrize(
    "model",
    [
        HistGradientBoostingClassifier(max_iter=60, random_state=SEED),
        RandomForestClassifier(n_estimators=30, random_state=SEED),
    ],
    ids=["hgb", "rf"],
)
def test_sklearn_tree_classifier_exports_pass_parity(titanic, model, tmp_path):
    schema, train, test, y = titanic
    pipeline = _pipeline(schema, model, scale=False).fit(to_model_frame(train, schema), y)
    records = export_sklearn(pipeline, schema, test, tmp_path)
    _assert_all_passed(records, ["joblib", "onnx"])


def test_hist_gradient_boosting_threshold_between_adjacent_float32_values(tmp_path):
    # Two adjacent float32 values whose float64 midpoint rounds *up* to the larger one: skl2onnx
    # alone sends the larger value left (a third of these rows mislabelled); floored, it matches.
    low = np.nextafter(np.float32(3.0), np.float32(4.0))
    values = [low, np.nextafter(low, np.float32(4.0)), np.nextafter(np.nextafter(low, np.float32(4.0)), 4.0)]
    frame = pd.DataFrame({"x": np.array(values * 50, dtype=np.float64), "target": [0, 1, 1] * 50})
    schema = InputSchema(
        task="classification", target="target", columns=[ColumnSpec(name="x", kind="numeric")], classes=[0, 1]
    )
    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=5)
    pipeline = _pipeline(schema, model, scale=False).fit(to_model_frame(frame, schema), frame["target"])
    records = export_sklearn(pipeline, schema, frame, tmp_path)
    _assert_all_passed(records, ["joblib", "onnx"])


@pytest.mark.parametrize(
    "estimator", [Ridge(), HistGradientBoostingRegressor(max_iter=60, random_state=SEED)]
)
def test_sklearn_regression_exports_pass_parity(diabetes, estimator, tmp_path):
    schema, train, test, y = diabetes
    scale = isinstance(estimator, Ridge)
    pipeline = _pipeline(schema, estimator, scale=scale).fit(to_model_frame(train, schema), y)
    records = export_sklearn(pipeline, schema, test, tmp_path)
    _assert_all_passed(records, ["joblib", "onnx"])
    assert [o.name for o in onnx.load(records[1].path).graph.output] == ["prediction"]


def test_a_value_beyond_the_training_range_is_read_as_the_range_edge_everywhere(diabetes, tmp_path):
    """A linear model (and a network, on the same scaled path) never extrapolates past the training
    rows' range: a data-entry error at serving time (bmi 100 where training saw at most ~0.17) is
    read as the edge of the range, in scikit-learn and in the exported ONNX graph alike."""
    import onnxruntime as ort

    schema, train, test, y = diabetes
    pipeline = _pipeline(schema, Ridge(), scale=True).fit(to_model_frame(train, schema), y)
    rows = test.head(3).drop(columns="target").copy()
    edge = rows.copy()
    rows["bmi"] = [100.0, -100.0, float(train["bmi"].max()) * 50]
    edge["bmi"] = [train["bmi"].max(), train["bmi"].min(), train["bmi"].max()]
    far, at_edge = (
        pipeline.predict(to_model_frame(rows, schema)),
        pipeline.predict(to_model_frame(edge, schema)),
    )
    np.testing.assert_allclose(far, at_edge, rtol=1e-5)
    assert np.all(np.abs(far) < 10 * np.abs(y).max())  # no runaway prediction
    # the training rows are inside their own range: the model learnt what it learns unclipped
    plain = _pipeline(schema, Ridge(), scale=True)
    numeric = plain.steps[0][1].transformers[0][1]
    numeric.steps = [step for step in numeric.steps if step[0] != "clip"]
    plain.fit(to_model_frame(train, schema), y)
    np.testing.assert_allclose(
        plain.steps[-1][1].predict(plain[:-1].transform(to_model_frame(train, schema))),
        pipeline.predict(to_model_frame(train, schema)),
        rtol=1e-4,
    )
    records = export_sklearn(pipeline, schema, test, tmp_path)
    _assert_all_passed(records, ["joblib", "onnx"])
    session = ort.InferenceSession(records[1].path, providers=["CPUExecutionProvider"])
    onnx_far = session.run(None, to_onnx_feed(to_model_frame(rows, schema), schema))[0].ravel()
    np.testing.assert_allclose(onnx_far, at_edge, rtol=1e-4)


def test_dummy_onnx_export_is_recorded_as_a_clear_error(titanic, tmp_path):
    schema, train, test, y = titanic
    pipeline = _pipeline(schema, DummyClassifier(), scale=True).fit(to_model_frame(train, schema), y)
    joblib_record, onnx_record = export_sklearn(pipeline, schema, test, tmp_path)
    assert joblib_record.passed
    assert not onnx_record.passed and not onnx_record.parity.passed
    assert "DummyClassifier" in onnx_record.error and "never shipped" in onnx_record.error


# --------------------------------------------------------------------------------------------
# Keras exports


def _keras_model(n_features: int, n_out: int, regression_scale: tuple[float, float] | None = None):
    import keras

    keras.utils.set_random_seed(SEED)
    layers = [keras.Input((n_features,)), keras.layers.Dense(16, activation="relu")]
    if regression_scale is None:
        layers.append(keras.layers.Dense(n_out, activation="softmax"))
    else:
        mean, std = regression_scale
        layers += [keras.layers.Dense(1), keras.layers.Rescaling(scale=std, offset=mean)]
    return keras.Sequential(layers)


def test_keras_classifier_exports_pass_parity(titanic, tmp_path):
    schema, train, test, y = titanic
    pre = build_preprocessor(schema, scale=True).fit(to_model_frame(train, schema))
    x = pre.transform(to_model_frame(train, schema)).astype("float32")
    model = _keras_model(x.shape[1], len(schema.classes))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)

    records = export_keras(model, pre, schema, test, tmp_path)
    _assert_all_passed(records, ["keras", "h5", "savedmodel", "tflite", "onnx"])
    onnx_path = records[-1].path
    assert sorted(_onnx_inputs(onnx_path)) == sorted(schema.names)
    assert [o.name for o in onnx.load(onnx_path).graph.output] == ["label", "probabilities"]
    assert records[-1].parity.label_agreement == 1.0


def test_keras_regressor_exports_pass_parity(diabetes, tmp_path):
    schema, train, test, y = diabetes
    pre = build_preprocessor(schema, scale=True).fit(to_model_frame(train, schema))
    x = pre.transform(to_model_frame(train, schema)).astype("float32")
    model = _keras_model(x.shape[1], 1, regression_scale=(float(y.mean()), float(y.std())))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)

    records = export_keras(model, pre, schema, test, tmp_path)
    _assert_all_passed(records, ["keras", "h5", "savedmodel", "tflite", "onnx"])
    assert sorted(_onnx_inputs(records[-1].path)) == sorted(schema.names)
    assert [o.name for o in onnx.load(records[-1].path).graph.output] == ["prediction"]


# --------------------------------------------------------------------------------------------
# parity rules


def test_label_flip_on_a_near_tie_counts_as_agreeing_and_is_reported():
    reference = {"label": np.array([0, 1]), "probabilities": np.array([[0.50001, 0.49999], [0.2, 0.8]])}
    candidate = {"label": np.array([1, 1]), "probabilities": np.array([[0.49999, 0.50001], [0.2, 0.8]])}
    result = compare(reference, candidate, "classification")
    assert result.passed and result.label_agreement == 1.0 and result.near_ties == 1
    assert "near-tie" in result.note

    candidate = {"label": np.array([0, 0]), "probabilities": reference["probabilities"]}
    result = compare(reference, candidate, "classification")
    assert not result.passed and result.label_agreement == 0.5


def test_regression_tolerance_is_relative_to_the_target_scale():
    reference = {"prediction": np.array([100.0, 300.0])}
    assert compare(reference, {"prediction": np.array([100.02, 300.0])}, "regression").passed
    assert not compare(reference, {"prediction": np.array([100.05, 300.0])}, "regression").passed


# --------------------------------------------------------------------------------------------
# deployment package and ModelInference


def _load_deployed(path: Path) -> ModuleType:
    """Import the package's own inference.py copy, as a user of the package would."""
    spec = importlib.util.spec_from_file_location(f"deployed_inference_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def package(titanic, logreg, tmp_path):
    schema, _, test, _ = titanic
    exports = export_sklearn(logreg, schema, test, tmp_path / "exports")
    metadata = {
        "model_name": "logistic_regression",
        "metrics": {"accuracy": 0.78},
        "created": "2025-01-01T00:00:00Z",
        "seed": SEED,
        "data_fingerprint": "0" * 64,
        "versions": {"onnxruntime": "1.32.0"},
    }
    deploy = tmp_path / "deployment"
    dockerfile = 'FROM python:3.11-slim\nCOPY . /app\nCMD ["python", "/app/inference.py", "-"]\n'
    manifest = write_package(
        deploy, exports[1].path, schema, metadata, extra_files={"Dockerfile": dockerfile}
    )
    return deploy, manifest, _load_deployed(deploy / "inference.py")


def test_package_contents_and_manifest(titanic, package):
    deploy, manifest, _ = package
    assert manifest["format"] == "ml-expert-manifest/1"
    assert set(manifest["files"]) == {
        "model.onnx",
        "schema.json",
        "inference.py",
        "requirements.txt",
        "README.md",
        "Dockerfile",
    }
    assert manifest["model_name"] == "logistic_regression" and manifest["seed"] == SEED
    assert json.loads((deploy / "manifest.json").read_text()) == manifest
    assert (deploy / "requirements.txt").read_text().split() == ["onnxruntime==1.32.0", "numpy==2.4.6"]
    readme = (deploy / "README.md").read_text()
    assert "ModelInference" in readme and "logistic_regression" in readme and "accuracy" in readme
    imported = set()
    for node in ast.walk(ast.parse((deploy / "inference.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names}
    assert third_party <= {"numpy", "onnxruntime", "__future__"}  # self-contained
    assert InputSchema.model_validate_json((deploy / "schema.json").read_text()) == titanic[0]


def _count_writes(monkeypatch: pytest.MonkeyPatch, root: Path) -> dict[str, int]:
    """How many times each file under `root` is written (text, bytes or copied)."""
    import ml_expert.tools.deployment.package as package_module

    counts: dict[str, int] = {}

    def counted(write):
        def wrapper(target, *args, **kwargs):
            path = Path(target)
            if path.resolve().is_relative_to(root.resolve()):
                name = path.resolve().relative_to(root.resolve()).as_posix()
                counts[name] = counts.get(name, 0) + 1
            return write(target, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(Path, "write_text", counted(Path.write_text))
    monkeypatch.setattr(Path, "write_bytes", counted(Path.write_bytes))
    original_copy = shutil.copyfile
    monkeypatch.setattr(
        package_module.shutil, "copyfile", lambda src, dst: counted(lambda t: original_copy(src, t))(dst)
    )
    return counts


def test_the_package_is_written_once_with_its_measured_latency(titanic, logreg, tmp_path, monkeypatch):
    """The package's latency is measured on its staged files (verified against their hashes, before
    manifest.json exists), then the README that shows it and the manifest are written: every file of
    the package is written exactly once, and the sealed package verifies."""
    from ml_expert.runtime.inference import IntegrityError, ModelInference
    from ml_expert.tools.validation.latency import measure

    schema, _, test, _ = titanic
    exports = export_sklearn(logreg, schema, test, tmp_path / "exports")
    deploy = tmp_path / "deployment"
    rows = test.head(20).to_dict(orient="records")
    seen: dict[str, object] = {}

    def timed(staged: Path, files: dict[str, str]) -> dict[str, object]:
        seen["files"] = dict(files)
        assert not (staged / "manifest.json").exists() and not (staged / "README.md").exists()
        model = ModelInference(staged, files=files)  # verified against the staged hashes
        figures = measure(model.predict, rows, rows, len(rows), calls=20)
        return {"latency": figures.model_dump(), "measured_on": {"cpu": "test"}}

    counts = _count_writes(monkeypatch, deploy)
    manifest = write_package(
        deploy, exports[1].path, schema, {"model_name": "logreg"}, {"Dockerfile": "FROM x\n"}, measure=timed
    )
    monkeypatch.undo()
    on_disk = sorted(p.relative_to(deploy).as_posix() for p in deploy.rglob("*") if p.is_file())
    assert on_disk == sorted([*manifest["files"], "manifest.json"])
    assert counts == dict.fromkeys(on_disk, 1), counts
    assert set(seen["files"]) == set(manifest["files"]) - {"README.md"}
    assert all(manifest["files"][name] == sha for name, sha in seen["files"].items())
    assert json.loads((deploy / "manifest.json").read_text()) == manifest
    assert manifest["latency"]["p50_ms"] > 0 and manifest["measured_on"] == {"cpu": "test"}
    readme = (deploy / "README.md").read_text()
    assert "Measured latency" in readme and f"p50 {manifest['latency']['p50_ms']:.3f} ms" in readme
    _load_deployed(deploy / "inference.py").ModelInference(deploy)  # the package's own copy verifies it
    (deploy / "schema.json").write_text((deploy / "schema.json").read_text() + " ")
    with pytest.raises(IntegrityError, match="schema.json"):
        ModelInference(deploy, files=seen["files"])
    with pytest.raises(ValueError, match="files"):
        write_package(tmp_path / "again", exports[1].path, schema, {}, measure=lambda d, f: {"files": {}})


def test_model_inference_matches_the_pipeline(titanic, logreg, package):
    schema, _, test, _ = titanic
    deploy, _, runtime = package
    model = runtime.ModelInference(deploy)
    assert model.classes == schema.classes

    rows = test.head(40).copy()
    rows.iloc[0, rows.columns.get_loc("embarked")] = "Z"  # unseen category
    rows.iloc[1, rows.columns.get_loc("age")] = np.nan  # missing value
    rows.iloc[2, rows.columns.get_loc("sex")] = None
    expected = logreg.predict(to_model_frame(rows, schema))
    expected_proba = logreg.predict_proba(to_model_frame(rows, schema))

    assert model.predict(rows) == [schema.classes[i] for i in expected]
    np.testing.assert_allclose(model.predict_proba(rows), expected_proba, atol=PROBABILITY_TOLERANCE)
    records = rows.to_dict(orient="records")
    records[1]["age"] = None
    records[3]["fare"] = str(records[3]["fare"])  # numeric text is accepted
    assert model.predict(records) == [schema.classes[i] for i in expected]
    assert model.predict(records[0]) == [schema.classes[expected[0]]]
    assert model.predict([]) == []


def test_tampered_model_is_refused(package):
    deploy, _, runtime = package
    data = bytearray((deploy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (deploy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(runtime.IntegrityError, match="model.onnx"):
        runtime.ModelInference(deploy)


def test_missing_listed_file_is_refused(package):
    deploy, _, runtime = package
    (deploy / "schema.json").unlink()
    with pytest.raises(runtime.IntegrityError, match="schema.json"):
        runtime.ModelInference(deploy)


def test_invalid_rows_raise_schema_error_naming_the_field(titanic, package):
    _, _, test, _ = titanic
    deploy, _, runtime = package
    model = runtime.ModelInference(deploy)
    row = test.head(1).to_dict(orient="records")[0]

    missing = {k: v for k, v in row.items() if k != "fare"}
    with pytest.raises(runtime.SchemaError, match=r"row 0: missing field 'fare'"):
        model.predict(missing)
    with pytest.raises(runtime.SchemaError, match=r"row 1: field 'age' must be numeric.*'old'"):
        model.predict([row, {**row, "age": "old"}])
    with pytest.raises(runtime.SchemaError, match="'sex'"):
        model.validate({**row, "sex": ["female"]})
    assert issubclass(runtime.SchemaError, ValueError)


def test_model_inference_coerces_like_to_model_frame(titanic, package):
    schema, _, test, _ = titanic
    deploy, _, runtime = package
    model = runtime.ModelInference(deploy)
    base = test.head(1).to_dict(orient="records")[0]
    odd_numbers = [1, "2", " 3 ", None, np.nan, "7", "", True, np.int64(2), np.float32(1.5), pd.NA]
    odd_categories = ["S", 3.0, 3, None, np.nan, "", "Q", True, np.float64(2.0), "3.0", pd.NA]
    rows = [{**base, "pclass": n, "embarked": c} for n, c in zip(odd_numbers, odd_categories, strict=True)]
    feed = model._feed(model.validate(rows))
    expected = to_onnx_feed(pd.DataFrame(rows), schema)
    for name in schema.names:
        if name in schema.numeric:
            np.testing.assert_array_equal(feed[name], expected[name], err_msg=name)
            assert feed[name].dtype == np.float32
        else:
            assert feed[name].ravel().tolist() == expected[name].ravel().tolist(), name
    with pytest.raises(runtime.SchemaError, match="'pclass'"):
        model.validate({**base, "pclass": "1_000"})
    # a non-finite number is refused, never imputed as if it were missing (issue 17)
    with pytest.raises(runtime.SchemaError, match="'pclass'"):
        model.validate({**base, "pclass": "inf"})


def test_string_class_labels_multiclass_package(tmp_path):
    frame = pd.read_csv(DATASETS / "penguins.csv")
    train, test = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame["target"])
    classes = sorted(frame["target"].unique().tolist())
    numeric = [c for c in frame.columns if c != "target" and pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric and c != "target"]
    schema = _schema("classification", train, numeric, categorical, classes=classes)
    y = train["target"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    pipeline = _pipeline(schema, HistGradientBoostingClassifier(max_iter=30, random_state=SEED), scale=False)
    pipeline.fit(to_model_frame(train, schema), y)
    records = export_sklearn(pipeline, schema, test, tmp_path / "exports")
    _assert_all_passed(records, ["joblib", "onnx"])
    write_package(tmp_path / "deployment", records[1].path, schema, {"model_name": "hgb"})
    runtime = _load_deployed(tmp_path / "deployment" / "inference.py")
    model = runtime.ModelInference(tmp_path / "deployment")
    expected = [classes[i] for i in pipeline.predict(to_model_frame(test, schema))]
    assert model.predict(test) == expected
    assert set(expected) <= set(classes) and isinstance(expected[0], str)
    assert model.predict_proba(test).shape == (len(test), 3)


def test_keras_multiclass_exports_pass_parity(tmp_path):
    frame = pd.read_csv(DATASETS / "penguins.csv")
    train, test = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame["target"])
    classes = sorted(frame["target"].unique().tolist())
    numeric = [c for c in frame.columns if c != "target" and pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric and c != "target"]
    schema = _schema("classification", train, numeric, categorical, classes=classes)
    y = train["target"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    pre = build_preprocessor(schema, scale=True).fit(to_model_frame(train, schema))
    x = pre.transform(to_model_frame(train, schema)).astype("float32")
    model = _keras_model(x.shape[1], len(classes))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    records = export_keras(model, pre, schema, test, tmp_path)
    _assert_all_passed(records, ["keras", "h5", "savedmodel", "tflite", "onnx"])


def test_inference_command_line(titanic, logreg, package, tmp_path):
    schema, _, test, _ = titanic
    deploy, _, _ = package
    rows = test.head(3)
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(rows.to_json(orient="records"))
    result = subprocess.run(
        [sys.executable, str(deploy / "inference.py"), str(rows_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = [schema.classes[i] for i in logreg.predict(to_model_frame(rows, schema))]
    assert json.loads(result.stdout) == {"predictions": expected}
