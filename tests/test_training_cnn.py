"""Images get a Keras CNN that takes the flat pixel row, so every export path works unchanged."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from ml_expert.agents.researcher import plan_network
from ml_expert.phases import DataResult
from ml_expert.tools.data.prepare import load_split, prepare_data
from ml_expert.tools.deployment.exports import export_keras
from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn


def test_digits_as_images_train_a_cnn_that_exports_everywhere(datasets: Path, tmp_path: Path) -> None:
    import keras

    prepared = prepare_data(str(datasets / "digits.csv"), "target", 0, tmp_path / "data")
    assert prepared.modality == "image" and prepared.image_shape == [8, 8, 1]
    data = DataResult.model_construct(
        **{
            "task": prepared.task,
            "modality": prepared.modality,
            "image_shape": prepared.image_shape,
            "split_sizes": prepared.split_sizes,
            "n_features_out": prepared.n_features_out,
            "train_class_counts": {str(i): 1 for i in range(10)},
            "imbalance_ratio": 1.0,
        }
    )
    plan, reason = plan_network(data, 120.0, 0.95, "accuracy", True, None)
    assert plan["train_dnn"] and plan["network"] == "Keras CNN", reason
    config = DNNConfig.model_validate(plan["dnn_config"]).model_copy(update={"max_epochs": 4, "patience": 4})
    assert config.architecture == "cnn"

    schema = prepared.input_schema
    files = prepared.files
    x_train, x_val = np.load(files["X_train"]), np.load(files["X_val"])
    y_train, y_val = (
        load_split(files, "train", schema, prepared.file_hashes)[1],
        load_split(files, "val", schema, prepared.file_hashes)[1],
    )
    model = build_dnn(x_train.shape[1], "classification", 10, config, seed=0)
    assert tuple(model.input.shape) == (None, 64)  # the input stays the flat row
    assert isinstance(model.layers[1], keras.layers.Reshape) and model.layers[1].target_shape == (8, 8, 1)
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    result = train_dnn(
        model, x_train, y_train.astype("float32"), x_val, y_val.astype("float32"), config, tmp_path / "ckpt"
    )
    assert result.epochs_trained == 4 and not result.diverged
    accuracy = float(np.mean(np.argmax(model.predict_on_batch(x_val), axis=1) == y_val))
    assert accuracy > 0.85, accuracy

    preprocessor = joblib.load(files["preprocessor"])
    test_frame = load_split(files, "test", schema, prepared.file_hashes)[0]
    records = export_keras(model, preprocessor, schema, test_frame, tmp_path / "exports")
    assert {r.format: bool(r.parity and r.parity.passed) for r in records} == {
        "keras": True,
        "h5": True,
        "savedmodel": True,
        "tflite": True,
        "onnx": True,
    }
