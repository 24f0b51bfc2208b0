"""LSTM and Transformer readers of text and sequences: the researcher's rule, a forced choice, training,
every export reloaded and compared (a format that cannot hold the network withdrawn, never shipped
half-verified), and the package served through `ml-expert predict`."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_helpers import predict_rows, run_quick
from test_text_sequence import _waves

from ml_expert.tools.selection.sequence_choice import choose_reader

pytestmark = pytest.mark.long_running  # two forced readers, ~107 s each idle: queued first


def _choice(
    kind: str, length: int, rows: int, budget: float = 300.0, room: float = 0.2, forced: str = "auto"
):
    filters = [64] if kind == "text" else [32, 64]
    return choose_reader(kind, length, 0, rows, rows // 4, 32, budget, room, filters, [64], 2, forced)


def test_reader_rule_uses_length_rows_budget_and_room() -> None:
    # short for the convolution's window: the convolution, whatever the budget
    short = _choice("text", 16, 50_000)
    assert short.layer == "conv" and "reach 5" in short.reason
    assert _choice("sequence", 48, 5_000).layer == "conv"  # 48 <= 4 x 13
    # long, few rows: an LSTM; long with many rows: a Transformer encoder
    assert _choice("text", 64, 3_000).layer == "lstm"
    assert _choice("text", 64, 20_000, budget=1200).layer == "transformer"
    # a long signal with few rows gets the LSTM; with many rows, the Transformer on 4-step patches
    assert _choice("sequence", 600, 5_000, budget=3000).layer == "lstm"
    assert _choice("sequence", 600, 20_000, budget=3000).layer == "transformer"
    # past ATTENTION_MAX_LENGTH tokens attention is too dear: 2000 steps = 500 patches
    assert _choice("sequence", 2000, 20_000, budget=3000).layer != "transformer"
    # no room left by the baselines, or no budget for enough epochs: the convolution
    assert _choice("text", 64, 3_000, room=0.01).layer == "conv"
    tight = _choice("sequence", 600, 20_000, budget=20)
    assert tight.layer == "conv" and tight.epochs["lstm"] < 20
    # a forced reader is taken as asked, the figures recorded all the same
    forced = _choice("text", 16, 500, forced="transformer")
    assert forced.layer == "transformer" and forced.forced and forced.epochs["transformer"] >= 5
    # the transformer's cost grows with the square of the length, the LSTM's linearly
    assert (
        _choice("sequence", 400, 10).flops_per_row["transformer"]
        > 4 * _choice("sequence", 100, 10).flops_per_row["transformer"] - 1
    )


def _ramps(n: int, seed: int, steps: int = 24, width: int = 8) -> pd.DataFrame:
    """A rising or a falling ramp of `width` steps at a random place (wrapping round) in noise.

    Every step holds the same values under both labels (the ramp's values, reversed, at a uniformly
    random place), so a model of the steps as separate columns stays near chance, and a reader of
    the order does not: measured 5-fold on 300 rows, linear 0.55, forest 0.69, HGB 0.64; an LSTM
    0.92 after 20 epochs. (On 900 rows the RBF SVM reached 0.85: keep the data small.)"""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1.0, 1.0, width)
    rows, labels = [], []
    for _ in range(n):
        rising = bool(rng.integers(0, 2))
        signal = rng.normal(0, 0.5, steps)
        at = (int(rng.integers(0, steps)) + np.arange(width)) % steps
        signal[at] += rng.uniform(1.0, 2.0) * (ramp if rising else ramp[::-1])
        rows.append(signal)
        labels.append("rising" if rising else "falling")
    frame = pd.DataFrame(np.round(rows, 4), columns=[f"t{i}" for i in range(steps)])
    frame["shape"] = labels
    return frame


# Measured at load 2-4 on 2 cores: model selection (5-fold CV, no ensemble) 6-10 s; each network then
# stopped early (the LSTM after 41 epochs, 24 s, the Transformer after 41, 21-28 s), well inside its cap.
BUDGET = "60"


def _finding(run_dir: Path, key: str) -> dict:
    value = json.loads((run_dir / "findings" / f"{key}.json").read_text())
    return value.get("value", value)


def _served_matches_keras(payload: dict, rows, workspace: Path, tmp_path: Path) -> None:
    import keras

    import ml_expert.tools.training.sequence_models  # noqa: F401
    from ml_expert.tools.data.schema import InputSchema, to_model_frame

    run_dir = Path(payload["run_dir"])
    predicted = predict_rows(payload["run_id"], rows, workspace, tmp_path)
    schema = InputSchema.model_validate_json((run_dir / "deployment" / "schema.json").read_text())
    model = keras.saving.load_model(run_dir / "exports" / "dnn" / "model.keras", compile=False)
    preprocessor = joblib.load(run_dir / "data" / "preprocessor.joblib")
    x = preprocessor.transform(to_model_frame(rows, schema)).astype("float32")
    expected = np.asarray(model.predict_on_batch(x))
    np.testing.assert_allclose(predicted[[f"proba_{c}" for c in schema.classes]], expected, atol=1e-4)


def _saws(n: int, seed: int, steps: int = 24) -> pd.DataFrame:
    """Rising or falling sawtooth waves (random period, phase, amplitude and noise) shifted by a
    random offset: the direction is in the differences between steps, which a model of the steps as
    separate columns cannot read off one column. Measured 5-fold on 300 rows: linear 0.53, forest
    0.72, HGB 0.62; the Transformer 0.95 after 20 epochs (an LSTM stays near chance on the offset)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    rows, labels = [], []
    for _ in range(n):
        rising = bool(rng.integers(0, 2))
        wave = 2 * ((t / rng.uniform(8, 16) + rng.uniform(0, 1)) % 1.0) - 1
        noise = rng.normal(0, 0.3, steps)
        rows.append(rng.uniform(0.5, 2.0) * (wave if rising else -wave) + noise + rng.uniform(-3, 3))
        labels.append("rising" if rising else "falling")
    frame = pd.DataFrame(np.round(rows, 4), columns=[f"t{i}" for i in t])
    frame["shape"] = labels
    return frame


# Data on which each reader beats the baselines by more than the noise margin, so that the network
# ships and its exports, release and serving are checked on every run (only the shipped model is
# exported). The LSTM on the waves lost to HGB within the margin (0.80 vs 0.73 on 45 rows). Seed 1:
# the LSTM on 500 ramps 0.933 vs svm 0.693 (margin 0.111; its stopping split passed 0.92 by epoch 12);
# the Transformer on 300 saws 0.956 vs forest 0.689 (margin 0.142).
READER_DATA = {"lstm": (_ramps, 500), "transformer": (_saws, 300)}


@pytest.mark.parametrize("layer", ["lstm", "transformer"])
def test_forced_reader_trains_exports_and_serves(tmp_path: Path, layer: str) -> None:
    import keras

    import ml_expert.tools.training.sequence_models  # noqa: F401

    kind, (make, rows) = "sequence", READER_DATA[layer]
    data = tmp_path / "data.csv"
    make(rows, 0).to_csv(data, index=False)
    workspace = tmp_path / "ws"
    payload = run_quick(
        data,
        "shape",
        workspace,
        1,
        "--dnn",
        "--budget",
        BUDGET,
        "--network",
        layer,
        "--modality",
        "sequence",
    )
    run_dir = Path(payload["run_dir"])
    plan = _finding(run_dir, "model-selection")["plan"]
    assert plan["train_dnn"] and plan["reader"]["layer"] == layer and plan["reader"]["forced"]
    assert plan["dnn_config"]["sequence_layer"] == layer
    assert "asked for (--network" in plan["reader"]["reason"] and "planned epochs" in plan["reader"]["reason"]
    trained = _finding(run_dir, "training")
    assert trained["dnn"]["config"]["sequence_layer"] == layer and trained["dnn"]["epochs_trained"] >= 1
    # the network must ship: what follows checks its exports, release and serving
    assert payload["chosen_model"] == "dnn", trained["choice_reason"]
    network = keras.saving.load_model(run_dir / "exports" / "dnn" / "model.keras", compile=False)
    assert network.name.startswith(f"{kind}_{layer}")
    wanted = keras.layers.LSTM if layer == "lstm" else keras.layers.MultiHeadAttention
    assert any(isinstance(x, wanted) for x in network.layers)

    deployment = _finding(run_dir, "deployment")
    exports = {Path(e["path"]).parent.name + "/" + e["format"]: e for e in deployment["exports"]}
    shipped = {k: e for k, e in exports.items() if k.startswith("dnn/") and e["shipped"]}
    withdrawn = {k: e for k, e in exports.items() if k.startswith("dnn/") and not e["shipped"]}
    assert {"dnn/keras", "dnn/onnx"} <= set(shipped) and all(e["passed"] for e in shipped.values())
    assert set(shipped) | set(withdrawn) == {
        f"dnn/{f}" for f in ("keras", "h5", "savedmodel", "tflite", "onnx")
    }
    for record in withdrawn.values():
        # withdrawn: its file gone, the reason said; never a half-verified file left behind
        assert (
            not Path(record["path"]).exists()
            and "cannot hold this architecture" in record["not_shipped_reason"]
        )
    if layer == "lstm":
        # TFLite has no TensorList loop without select ops: withdrawn, said in the release
        assert "dnn/tflite" in withdrawn
    release = json.loads((run_dir / "run.json").read_text())["gates"]["release"]
    assert release["passed"], release
    checks = {c["name"]: c for c in release["checks"]}
    assert set(checks) >= {f"export_{k.split('/')[1]}_matches" for k in shipped}
    assert all(
        f"export_{k.split('/')[1]}_matches" not in checks for k in withdrawn if k.split("/")[1] != "onnx"
    )
    if withdrawn:
        assert set(checks["exports_not_shipped"]["value"]) == {k.split("/")[1] for k in withdrawn}
    # served from raw rows through the package (ONNX), and agreeing with the Keras network
    new_rows = make(30, 7).drop(columns="shape")
    _served_matches_keras(payload, new_rows, workspace, tmp_path)


def test_forcing_a_reader_on_tabular_data_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess

    from cli_helpers import CLI

    data = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "iris.csv"
    proc = subprocess.run(
        [*CLI, "run", str(data), "--json", "--workspace", str(tmp_path / "ws"), "--memory", "embedded"]
        + ["--budget", "5", "--network", "lstm"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--network lstm reads text or sequences" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_withdrawn_export_is_deleted_reported_and_not_judged(tmp_path: Path) -> None:
    """An LSTM's every export reloaded and compared; TFLite (no TensorList loop without select ops)
    withdrawn: file deleted, reason kept, and the release gate judges only what ships."""
    from phase_helpers import deployment_result, validation_result

    from ml_expert.graph.gates import release_gate
    from ml_expert.tools.data.prepare import load_split, prepare_data
    from ml_expert.tools.deployment.exports import WITHDRAWABLE_FORMATS, export_keras, withdraw_unsupported
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    data = tmp_path / "waves.csv"
    _waves(60, 0, steps=12).to_csv(data, index=False)
    prepared = prepare_data(str(data), "shape", 0, tmp_path / "data", modality="sequence")
    schema = prepared.input_schema
    config = DNNConfig(architecture="sequence", sequence_layer="lstm", hidden_units=[8])
    model = build_dnn(prepared.n_features_out, "classification", len(schema.classes), config, 0)
    preprocessor = joblib.load(prepared.files["preprocessor"])
    reference = load_split(prepared.files, "val", schema, prepared.file_hashes)[0]
    records = withdraw_unsupported(
        export_keras(model, preprocessor, schema, reference, tmp_path / "exports"), WITHDRAWABLE_FORMATS
    )
    by_format = {r.format: r for r in records}
    assert by_format["keras"].passed and by_format["onnx"].passed and by_format["savedmodel"].passed
    tflite = by_format["tflite"]
    assert not tflite.shipped and not Path(tflite.path).exists()
    assert "cannot hold this architecture" in (tflite.not_shipped_reason or "")
    state = {
        "options": {"workspace": str(tmp_path / "ws")},
        "deployment": deployment_result(exports=[r.model_dump() for r in records]),
        "validation": validation_result(),
        "data": {},
    }
    checks = {c.name: c for c in release_gate(state).checks}
    assert "export_tflite_matches" not in checks and checks["export_onnx_matches"].passed
    assert checks["exports_not_shipped"].value == ["tflite"]
