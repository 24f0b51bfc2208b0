"""A free-text column read word by word: TextVectorization's ids, a Conv1D network that beats the
bag-of-words baselines where word order decides, and its exports served through the package."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_helpers import CLI, predict_rows, run_quick
from shared_release import TextRelease, copy_workspace

from ml_expert.tools.data.prepare import prepare_data
from ml_expert.tools.data.schema import InputSchema, to_model_frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not an installed package
from benchmarks.vocabulary_shift import SUBJECTS, reviews  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_word_ids_are_text_vectorization_output(tmp_path: Path) -> None:
    """The schema's word-id columns equal Keras TextVectorization with the same vocabulary and length."""
    import keras

    prepared = prepare_data(str(DATASETS / "titanic.csv"), "target", 0, tmp_path, modality="text")
    schema = prepared.input_schema
    sequence = prepared.sequence
    assert prepared.modality == "text" and sequence is not None and sequence.column == "name"
    vocabulary = schema.vocabularies["name"]
    length = sequence.length
    assert len(schema.token_ids) == length and 4 <= length <= 64
    titanic = pd.read_csv(DATASETS / "titanic.csv")
    layer = keras.layers.TextVectorization(
        vocabulary=vocabulary, output_sequence_length=length, output_mode="int"
    )
    expected = np.asarray(layer(titanic["name"].tolist()))
    ours = to_model_frame(titanic, schema)[schema.token_ids].to_numpy()
    np.testing.assert_array_equal(ours, expected)


def _reviews(n: int, seed: int) -> pd.DataFrame:
    """Two clauses, exactly one negated: the label is what the first clause means.

    Every text holds "not" once and good/bad twice in all, so a bag of words says nothing about the
    label; only the order of the words does ("the food was not good and ..." vs "... and the
    food was not good")."""
    return reviews(n, seed, SUBJECTS)


def test_text_cnn_beats_bag_of_words_and_ships(text_release: TextRelease, tmp_path: Path) -> None:
    """The suite's shared text CNN run (tests/shared_release.py: 1,200 of these reviews, seed 2)."""
    payload = text_release.summary
    workspace = copy_workspace(text_release, tmp_path / "ws")  # `predict` works in its own copy
    run_dir = Path(payload["run_dir"])
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    selection = selection.get("value", selection)
    assert selection["analysis"]["modality"] == "text"
    assert selection["plan"]["network"] == "Keras text CNN" and selection["plan"]["train_dnn"]
    assert selection["plan"]["dnn_config"]["architecture"] == "text"
    # Word order decides the label: the bag-of-words baselines stay near chance, the network does not.
    board = {c["name"]: c["val_score"] for c in selection["leaderboard"]}
    assert payload["chosen_model"] == "dnn", board
    assert payload["metrics"]["accuracy"] >= 0.9 and max(board["linear"], board["dummy"]) < 0.75, board

    # Every export of the network reloaded and matched; the package serves it from the raw text.
    deployment = json.loads((run_dir / "findings" / "deployment.json").read_text())
    deployment = deployment.get("value", deployment)
    dnn_exports = [e for e in deployment["exports"] if Path(e["path"]).parent.name == "dnn"]
    assert {e["format"] for e in dnn_exports} >= {"keras", "onnx", "tflite"}
    assert all(e["passed"] for e in dnn_exports), dnn_exports

    new_rows = _reviews(60, 5)
    new_rows.loc[0, "review"] = None  # a missing text is an all-padding sequence, on both sides
    new_rows.loc[1, "review"] = "Words the model never saw, and far more of them than the sequence holds " * 3
    predicted = predict_rows(payload["run_id"], new_rows.drop(columns="verdict"), workspace, tmp_path)
    schema = InputSchema.model_validate_json((run_dir / "deployment" / "schema.json").read_text())
    import keras

    model = keras.saving.load_model(run_dir / "exports" / "dnn" / "model.keras", compile=False)
    preprocessor = joblib.load(run_dir / "data" / "preprocessor.joblib")
    x = preprocessor.transform(to_model_frame(new_rows, schema)).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(predicted[[f"proba_{c}" for c in schema.classes]], expected, atol=1e-4)
    assert (predicted["prediction"][2:] == new_rows["verdict"][2:]).mean() >= 0.9


def _waves(n: int, seed: int, steps: int = 48) -> pd.DataFrame:
    """Sine, square and sawtooth waves with random phase, period, amplitude and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    rows, labels = [], []
    for _ in range(n):
        kind = int(rng.integers(0, 3))
        phase = rng.uniform(0, 1)
        period = rng.uniform(8, 16)
        cycle = (t / period + phase) % 1.0
        wave = [np.sin(2 * np.pi * cycle), np.sign(np.sin(2 * np.pi * cycle)), 2 * cycle - 1][kind]
        rows.append(rng.uniform(0.5, 2.0) * wave + rng.normal(0, 0.3, steps))
        labels.append(["sine", "square", "sawtooth"][kind])
    frame = pd.DataFrame(np.round(rows, 4), columns=[f"t{i}" for i in t])
    frame["shape"] = labels
    return frame


def test_numeric_sequence_trains_a_1d_cnn_and_exports(tmp_path: Path) -> None:

    data = tmp_path / "waves.csv"
    _waves(900, 0).to_csv(data, index=False)
    workspace = tmp_path / "ws"
    payload = run_quick(data, "shape", workspace, 4, "--dnn", "--modality", "sequence")
    run_dir = Path(payload["run_dir"])
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    selection = selection.get("value", selection)
    assert selection["analysis"]["modality"] == "sequence"
    assert selection["plan"]["network"] == "Keras 1-D CNN" and selection["plan"]["train_dnn"]
    import keras

    network = keras.saving.load_model(run_dir / "exports" / "dnn" / "model.keras", compile=False)
    assert network.name.startswith("sequence_cnn")
    assert any(isinstance(layer, keras.layers.Conv1D) for layer in network.layers)
    deployment = json.loads((run_dir / "findings" / "deployment.json").read_text())
    deployment = deployment.get("value", deployment)
    dnn_exports = [e for e in deployment["exports"] if Path(e["path"]).parent.name == "dnn"]
    assert {e["format"] for e in dnn_exports} >= {"keras", "onnx", "tflite"}
    assert all(e["passed"] for e in dnn_exports), dnn_exports
    assert payload["metrics"]["accuracy"] >= 0.9, payload["metrics"]


def test_sequence_modality_refuses_text_columns(tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "mixed.csv"
    frame = _waves(40, 1, steps=10)
    frame["note"] = "x"
    frame.to_csv(data, index=False)
    proc = subprocess.run(
        [*CLI, "run", str(data), "--target", "shape", "--json", "--modality", "sequence"]
        + ["--workspace", str(tmp_path / "ws"), "--memory", "embedded"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and "numeric columns" in payload["error"]
    assert "Traceback" not in proc.stderr


def test_serving_row_model_takes_one_text_field_per_text_column(tmp_path: Path) -> None:
    """The HTTP body has one text field for a column that feeds word flags and word ids."""
    from pydantic import ValidationError

    from ml_expert.serving.app import row_model

    prepared = prepare_data(str(DATASETS / "titanic.csv"), "target", 0, tmp_path, modality="text")
    schema = prepared.input_schema.model_dump()
    Row = row_model(schema)
    names = {f.alias or n for n, f in Row.model_fields.items()}
    assert names == set(prepared.input_schema.names)
    body = {name: None for name in names} | {"name": "Smith, Mr. John", "age": 30}
    row = Row.model_validate(body).model_dump(by_alias=True)
    assert row["name"] == "Smith, Mr. John"
    with pytest.raises(ValidationError):
        Row.model_validate(body | {"name": {"not": "text"}})
