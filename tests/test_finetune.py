"""`ml-expert run new.csv --from production`: a released model checked against the new data's schema,
continued on it, competing with the models from scratch, and judged against production on the new
data's test rows by the release gate (a worse one refused unless --force), the parent named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import CLI
from phase_helpers import deployment_result, validation_result

from ml_expert.graph.gates import release_gate
from ml_expert.registry import Registry
from ml_expert.tools.data.numbers import NumberFormat
from ml_expert.tools.data.schema import ColumnSpec, InputSchema
from ml_expert.tools.training.finetune import continue_sklearn, schema_differences, with_released_reading

pytestmark = pytest.mark.long_running  # three module releases (two networks) and many runs: queued first


def _run(data: Path, ws: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "run", str(data), "--json", "--workspace", str(ws), "--memory", "embedded"]
        + ["--budget", "30", "--no-dnn", "--seed", "2", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> dict:
    """breast_cancer split by tumour size: the first release learns on the smaller 60%, the second
    sample is the larger 60% (an overlap of 20%): the same columns, a shifted distribution."""
    root = tmp_path_factory.mktemp("finetune")
    frame = pd.read_csv(datasets / "breast_cancer.csv").sort_values("mean area", kind="stable")
    cut = int(len(frame) * 0.6)
    first, second = root / "first.csv", root / "second.csv"
    frame.iloc[:cut].to_csv(first, index=False)
    frame.iloc[len(frame) - cut :].sample(frac=1.0, random_state=0).to_csv(second, index=False)
    ws = root / "ws"
    proc = _run(first, ws)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"ws": ws, "first": first, "second": second, "root": root, "v1": json.loads(proc.stdout)}


def test_fine_tuned_model_competes_and_the_gate_compares_on_new_test_rows(shifted: dict) -> None:
    ws = shifted["ws"]
    assert Registry(ws).aliases()["production"] == "v1"
    proc = _run(shifted["second"], ws, "--from", "production")
    assert proc.returncode in (0, 5), proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    run_dir = Path(payload["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    training = training.get("value", training)
    board = {c["name"]: c for c in training["leaderboard"]}
    # the released model as it is, fine-tuned, and the models from scratch, on the same validation rows
    assert {"released", "fine_tuned", "linear", "random_forest", "hist_gradient_boosting"} <= set(board)
    assert board["fine_tuned"]["parent"] == "v1" and "continued" in board["fine_tuned"]["detail"]
    assert training["fine_tuning"]["parent"] == "v1"
    run = json.loads((run_dir / "run.json").read_text())
    decisions = " ".join(d["decision"] + " " + d.get("reason", "") for d in run["decisions"])
    assert "start from v1" in decisions and "fine-tune" in decisions
    # production was scored on this run's test rows, and the gate compared with that figure
    metrics = json.loads((run_dir / "findings" / "metrics.json").read_text())
    metrics = metrics.get("value", metrics)
    production = metrics["production_on_test"]
    assert production["version"] == "v1"
    check = {c["name"]: c for c in run["gates"]["release"]["checks"]}["not_worse_than_production"]
    assert check["threshold"] == production["test_score"] and "same new test rows" in check["detail"]
    assert check["passed"] == (metrics["test_score"] >= production["test_score"])
    assert (proc.returncode == 0) == run["gates"]["release"]["passed"]
    if proc.returncode == 0:
        # registered with its parent named in the version and the audit log
        version = payload.get("version") or Registry(ws).aliases()["production"]
        assert Registry(ws).show(version)["parent"] == "v1"
        register = [e for e in Registry(ws).audit() if e["action"] == "register"][-1]
        assert register["parent"] == "v1"


def test_release_gate_refuses_a_worse_fine_tuned_model_unless_forced(shifted: dict) -> None:
    def verdict(score: float, force: bool = False) -> dict:
        state = {
            "options": {"workspace": str(shifted["ws"]), "seed": 2, "force": force, "from_": "production"},
            "data": {"fingerprint": "f" * 64, "split_sizes": {}},
            "validation": validation_result(
                test_score=score, production_on_test={"version": "v1", "test_score": 0.9}
            ),
            "deployment": deployment_result(),
        }
        return {c.name: c for c in release_gate(state).checks}["not_worse_than_production"].model_dump()

    assert not verdict(0.85)["passed"]
    assert verdict(0.85, force=True)["passed"] and "--force given" in verdict(0.85, force=True)["detail"]
    assert verdict(0.9)["passed"]


def test_schema_mismatch_is_a_usage_error_naming_the_columns(shifted: dict) -> None:
    frame = pd.read_csv(shifted["second"]).drop(columns=["mean radius"])
    frame["colour"] = ["red", "blue", "green"] * (len(frame) // 3) + ["red"] * (len(frame) % 3)
    changed = shifted["root"] / "changed.csv"
    frame.to_csv(changed, index=False)
    proc = _run(changed, shifted["ws"], "--from", "v1")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    message = proc.stdout + proc.stderr
    assert "mean radius" in message and "colour" in message and "Traceback" not in proc.stderr
    proc = _run(shifted["second"], shifted["ws"], "--from", "v99")
    assert proc.returncode == 2 and "v99" in proc.stdout + proc.stderr


def test_continuation_keeps_the_trees_and_adds_rounds(datasets: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(datasets / "breast_cancer.csv")
    x, y = frame.drop(columns="target"), frame["target"].to_numpy()
    pipeline = Pipeline([("pre", StandardScaler()), ("model", HistGradientBoostingClassifier(max_iter=20))])
    pipeline.fit(x.iloc[:300], y[:300])
    mean_before = pipeline[0].mean_.copy()
    pipeline, how = continue_sklearn(pipeline, x.iloc[300:], y[300:])
    assert how.how == "warm_start" and pipeline[-1].n_iter_ == 30
    assert (pipeline[0].mean_ == mean_before).all()  # the released preprocessing is kept
    a = InputSchema(task="classification", target="y", columns=[ColumnSpec(name="a", kind="numeric")])
    b = InputSchema(task="classification", target="y", columns=[ColumnSpec(name="b", kind="numeric")])
    assert any("'a'" in d for d in schema_differences(a, b)) and any(
        "'b'" in d for d in schema_differences(a, b)
    )


def test_a_released_lightgbm_continues_boosting_from_its_booster(datasets: Path) -> None:
    """LightGBM has no warm_start: its rounds continue from the released booster (init_model) instead
    of a refit that forgets it. The released rounds are kept as they were, the new ones learn the
    shifted rows (diabetes sorted by bmi: released on the lower 300, continued on the rest)."""
    from lightgbm import LGBMRegressor
    from sklearn.metrics import mean_squared_error
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(datasets / "diabetes.csv").sort_values("bmi", kind="stable")
    x, y = frame.drop(columns="target"), frame["target"].to_numpy()
    model = LGBMRegressor(n_estimators=40, learning_rate=0.05, random_state=0, verbose=-1)
    pipeline = Pipeline([("pre", StandardScaler()), ("model", model)]).fit(x.iloc[:300], y[:300])
    new_x, new_y = x.iloc[300:], y[300:]
    released = pipeline.predict(new_x)
    pipeline, how = continue_sklearn(pipeline, new_x, new_y)
    booster = pipeline[-1].booster_
    assert how.how == "init_model" and "40 boosting rounds + 20" in how.detail, how
    assert booster.current_iteration() == 60 and pipeline[-1].n_estimators == 60
    features = pipeline[0].transform(new_x)
    np.testing.assert_allclose(booster.predict(features, num_iteration=40), released, rtol=1e-9)
    assert mean_squared_error(new_y, pipeline.predict(new_x)) < mean_squared_error(new_y, released)


def _price_and_date(number_format: dict | None, date_order: str | None) -> InputSchema:
    """A schema with a price column read in `number_format` and a date column read in `date_order`."""
    fmt = NumberFormat(**number_format) if number_format else None
    columns = [ColumnSpec(name="price", kind="numeric", number_format=fmt)]
    columns += [
        ColumnSpec(name="when", kind="numeric", derive=part, date_order=date_order)  # type: ignore[arg-type]
        for part in ("year", "month", "day")
    ]
    return InputSchema(task="regression", target="y", columns=columns)


DOLLARS = {"currency": "$", "example": "$1,234.56"}
EUROS = {"currency": "€", "example": "€1,234.56"}
PERCENT = {"percent": True, "example": "1,234.56%"}
THOUSANDS = {"example": "1,234.56"}  # comma thousands or (1,234), no symbol


@pytest.mark.parametrize(
    ("released", "new", "column", "words"),
    [
        ((DOLLARS, None), (EUROS, None), "price", ["'$1,234.56'", "'€1,234.56'"]),
        ((None, None), (DOLLARS, None), "price", ["plain numbers", "'$1,234.56'"]),
        ((None, None), (THOUSANDS, None), "price", ["plain numbers", "'1,234.56'"]),
        ((DOLLARS, None), (PERCENT, None), "price", ["'$1,234.56'", "'1,234.56%'"]),
        ((None, "dmy"), (None, "mdy"), "when", ["dmy (31/12/2024)", "mdy (12/31/2024)"]),
        ((None, None), (None, "dmy"), "when", ["ISO dates", "dmy (31/12/2024)"]),
        ((None, "dmy"), (None, "ymd"), "when", ["dmy", "ymd (2024/12/31)"]),
    ],
)
def test_a_column_read_differently_is_a_schema_difference(
    released: tuple, new: tuple, column: str, words: list[str]
) -> None:
    """`--from`: the released model serves with its own schema's reading; new data written so that
    reading would refuse or misread it (another currency, a format a plain column refuses, dd/mm
    against mm/dd, day-first against ISO) is named, column and both readings, not fine-tuned on."""
    differences = schema_differences(_price_and_date(*released), _price_and_date(*new))
    assert len(differences) == 1, differences
    assert f"column {column!r}" in differences[0] and all(w in differences[0] for w in words), differences


@pytest.mark.parametrize(
    ("released", "new"),
    [
        ((DOLLARS, "dmy"), (DOLLARS, "dmy")),
        ((DOLLARS, None), (None, None)),  # plain numbers read alike in a "$" column
        ((DOLLARS, None), (THOUSANDS, None)),  # "1,234" in a "$" column: the symbol may be left out
        ((PERCENT, None), (THOUSANDS, None)),
        ((None, "dmy"), (None, None)),  # ISO dates read alike under every order
        ((None, "ymd"), (None, None)),
    ],
)
def test_a_reading_the_released_model_shares_is_no_difference(released: tuple, new: tuple) -> None:
    assert schema_differences(_price_and_date(*released), _price_and_date(*new)) == []


def test_the_fine_tuned_schema_keeps_the_released_reading_where_it_reads_the_new_data() -> None:
    """Plain prices and ISO dates under a "$" / dd/mm release: the fine-tuned model is read the
    released way (it reads the new values the same), so it takes what the release's clients send."""
    released, new = _price_and_date(DOLLARS, "dmy"), _price_and_date(None, None)
    schema, changed = with_released_reading(released, new)
    assert changed == ["price", "when"]
    assert [(c.number_format, c.date_order) for c in schema.columns] == [
        (c.number_format, c.date_order) for c in released.columns
    ]
    assert [c.key for c in schema.columns] == [c.key for c in new.columns]
    assert new.columns[0].number_format is None  # the run's own schema object is not changed in place
    assert with_released_reading(released, released) == (released, [])
    assert with_released_reading(_price_and_date(None, None), _price_and_date(None, None))[1] == []


def test_a_keras_file_is_a_starting_point_when_its_widths_fit(shifted: dict, tmp_path: Path) -> None:
    """`--from FILE.keras` (a network trained elsewhere): read by the run's own preprocessing, as it
    is and fine-tuned, both competing on the new validation rows; a file of the wrong width is a
    usage error naming both widths."""
    import keras

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    config = DNNConfig(hidden_units=[16], max_epochs=5)
    width = len(pd.read_csv(shifted["second"]).columns) - 1  # 30 numeric columns, one input each
    good, wrong = tmp_path / "net.keras", tmp_path / "narrow.keras"
    build_dnn(width, "classification", 2, config, 0).save(good)
    build_dnn(width - 3, "classification", 2, config, 0).save(wrong)
    keras.backend.clear_session()

    ws = tmp_path / "ws"
    proc = _run(shifted["second"], ws, "--from", str(good))
    assert proc.returncode in (0, 5), proc.stderr[-3000:]
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    training = training.get("value", training)
    board = {c["name"]: c for c in training["leaderboard"]}
    assert board["released"]["kind"] == board["fine_tuned"]["kind"] == "keras"
    assert board["fine_tuned"]["parent"] == "file net.keras" and "continued" in board["fine_tuned"]["detail"]
    assert board["fine_tuned"]["predictions_sha256"]
    assert training["fine_tuning"]["parent_sha256"]
    # it stopped on training rows it held back: the validation rows it competed on were unseen by it
    record = json.loads((run_dir / "run.json").read_text())
    decisions = {d["decision"]: d["reason"] for d in record["decisions"]}
    assert "validation rows stay unseen" in decisions["fine-tuning stops on held-back training rows"]

    proc = _run(shifted["second"], ws, "--from", str(wrong))
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = proc.stdout + proc.stderr
    assert f"it takes {width - 3} inputs" in said and f"gives {width}" in said
    assert "Warning" not in proc.stderr  # ml-expert's message, not Keras'; the file is read uncompiled


def _waves(n: int, seed: int, cut: float) -> pd.DataFrame:
    """Two informative columns and two of noise; y is whether sin(3(a+b)) + sin(3(a-b)) exceeds `cut`:
    a boundary of many small oblique regions, which a network learnt from many rows draws and trees
    fit on a few hundred do not (they stay near the class prior). A second sample with another `cut`
    is the same task, shifted."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = (np.sin(3 * (x[:, 0] + x[:, 1])) + np.sin(3 * (x[:, 0] - x[:, 1])) > cut).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "y": y})


@pytest.fixture(scope="module")
def released_network(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A network trained elsewhere on many rows (`--from FILE.keras`) ships from a first run on a few
    hundred: the registry's v1 is a network, kept with its preprocessing in the version's source/."""
    import keras

    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    root = tmp_path_factory.mktemp("network")
    many = _waves(20000, 1, 0.0)
    network = build_dnn(4, "classification", 2, DNNConfig(hidden_units=[64, 64]), 0)
    network.fit(many[["a", "b", "c", "d"]].to_numpy("float32"), many["y"].to_numpy(), epochs=12, verbose=0)
    network.save(root / "pretrained.keras")
    keras.backend.clear_session()
    first, ws = root / "first.csv", root / "ws"
    _waves(400, 2, 0.0).to_csv(first, index=False)
    proc = _run(first, ws, "--target", "y", "--metric", "accuracy", "--from", str(root / "pretrained.keras"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    return {"root": root, "ws": ws, "v1": payload}


def test_production_network_is_fine_tuned_and_its_copy_ships(released_network: dict, tmp_path: Path) -> None:
    """`--from production` when production is a network: the registry's .keras and preprocessing are
    loaded, the network continues on the new rows read by the release's preprocessing, wins on the
    new validation rows, and ships: every export matches and `predict` gives the fine-tuned model's
    probabilities."""
    import joblib
    import keras

    from ml_expert.hashing import sha256_file

    ws = released_network["ws"]
    v1 = Registry(ws).show("production")
    assert v1["version"] == "v1" and v1["source"]["kind"] == "keras", v1
    assert set(v1["source"]["files"]) == {"model.keras", "preprocessor.joblib"}
    assert v1["source"]["config"]["learning_rate"] > 0
    for name, digest in v1["source"]["files"].items():  # hash-checked copies beside the package
        assert sha256_file(Path(v1["path"]) / "source" / name) == digest
    served = json.loads((Path(v1["path"]) / "manifest.json").read_text())["files"]
    assert "model.onnx" in served and not any(n.endswith((".keras", ".joblib")) for n in served)

    second = tmp_path / "second.csv"
    _waves(400, 3, 0.5).to_csv(second, index=False)  # the same columns, the boundary moved
    proc = _run(second, ws, "--target", "y", "--metric", "accuracy", "--from", "production")
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    run_dir = Path(payload["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    training = training.get("value", training)
    board = {c["name"]: c for c in training["leaderboard"]}
    assert board["released"]["kind"] == board["fine_tuned"]["kind"] == "keras"
    assert (
        "continued" in board["fine_tuned"]["detail"]
        and "the one it was trained with" in (board["fine_tuned"]["detail"])
    )
    assert (
        training["fine_tuning"]["parent"] == "v1"
        and training["fine_tuning"]["preprocessing"] == "the release's"
    )
    decisions = {
        d["decision"]: d["reason"] for d in json.loads((run_dir / "run.json").read_text())["decisions"]
    }
    assert "read the new rows with v1's preprocessing" in decisions
    assert "fine-tune the network from v1" in decisions
    chosen = training["chosen"]
    assert chosen["name"] == "fine_tuned", {n: c["val_score"] for n, c in board.items()}
    assert chosen["val_score"] > board["released"]["val_score"]
    metrics = json.loads((run_dir / "findings" / "metrics.json").read_text())
    metrics = metrics.get("value", metrics)
    assert metrics["production_on_test"]["version"] == "v1"  # the network production, on the new test rows

    # shipped: every export of the fine-tuned network reloaded and matched; registered with its parent
    deployment = json.loads((run_dir / "findings" / "deployment.json").read_text())
    deployment = deployment.get("value", deployment)
    exports = [e for e in deployment["exports"] if Path(e["path"]).parent.name == "dnn"]
    assert {e["format"] for e in exports} >= {"keras", "onnx"} and all(e["passed"] for e in exports), exports
    v2 = Registry(ws).show("production")
    assert v2["version"] == "v2" and v2["parent"] == "v1" and v2["source"]["kind"] == "keras"
    assert v2["source"]["files"]["preprocessor.joblib"] == v1["source"]["files"]["preprocessor.joblib"]

    # `predict` on the new package gives the fine-tuned network's probabilities
    from cli_helpers import predict_rows

    rows = _waves(40, 9, 0.5).drop(columns="y")
    predicted = predict_rows("production", rows, ws, tmp_path)
    network = keras.saving.load_model(chosen["path"], compile=False)
    preprocessor = joblib.load(chosen["preprocessor"])
    expected = np.asarray(network.predict(preprocessor.transform(rows).astype("float32"), verbose=0))
    np.testing.assert_allclose(predicted[["proba_0", "proba_1"]].to_numpy(), expected, atol=1e-4)


def test_a_network_reads_the_preprocessing_it_was_trained_on() -> None:
    from ml_expert.errors import IntegrityError
    from ml_expert.tools.training.finetune import network_preprocessor

    # a network from scratch reads the run's own; one fine-tuned from a release, the release's
    assert network_preprocessor("run.joblib", "aa", None, None) == ("run.joblib", "aa")
    assert network_preprocessor("run.joblib", "aa", "release.joblib", "bb") == ("release.joblib", "bb")
    with pytest.raises(IntegrityError, match="no SHA-256"):
        network_preprocessor("run.joblib", "aa", "release.joblib", None)


def test_a_network_released_before_source_is_read_through_its_run_findings(tmp_path: Path) -> None:
    """A version registered before the registry kept `source/` is found through its run's findings,
    each read through its model: a malformed one is a usage error naming the field."""
    from phase_helpers import candidate, network_record

    from ml_expert.agents.finetuning import _from_run
    from ml_expert.errors import UsageError
    from ml_expert.hashing import sha256_file
    from ml_expert.registry.records import VersionRecord

    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "findings").mkdir(parents=True)
    network, preprocessor = run_dir / "dnn" / "model.keras", run_dir / "preprocessor.joblib"
    network.parent.mkdir()
    network.write_bytes(b"net")
    preprocessor.write_bytes(b"pre")
    export = {
        "format": "keras",
        "path": str(network),
        "sha256": sha256_file(network),
        "parity": {"passed": True},
    }

    def write(key: str, value: dict) -> None:
        (run_dir / "findings" / f"{key}.json").write_text(json.dumps({"value": value}))

    write("deployment", deployment_result(exports=[export], model="dnn"))
    data = {
        "source": "rows.csv",
        "fingerprint": "f",
        "task": "classification",
        "features": ["a"],
        "split_sizes": {"train": 70, "val": 15, "test": 15},
        "preprocessor_sha256": sha256_file(preprocessor),
    }
    write("data-analysis", data)
    dnn = network_record(config={"learning_rate": 0.002})
    chosen = candidate("dnn", kind="keras", family="neural")
    write("training", {"chosen": chosen, "choice_reason": "r", "leaderboard": [chosen], "dnn": dnn})
    info = VersionRecord(version="v1", run_id="r1", model="dnn")  # version.json, as the registry reads it
    common = {"version": "v1", "run_id": "r1", "model": "dnn"}
    # the data-analysis finding leaves the files to the state: the preprocessing is not found
    with pytest.raises(UsageError, match="preprocessing of run r1's network is gone"):
        _from_run("v1", tmp_path, info, common)
    write("data-analysis", {**data, "files": {"preprocessor": str(preprocessor)}})  # a finding that named it
    released = _from_run("v1", tmp_path, info, common)
    assert released.preprocessor == str(preprocessor) and released.config["learning_rate"] == 0.002
    write(
        "training", {"chosen": chosen, "choice_reason": "r", "leaderboard": [chosen], "dnn": {"config": {}}}
    )
    with pytest.raises(UsageError, match="dnn.stopped_reason"):
        _from_run("v1", tmp_path, info, common)
    write("deployment", {**deployment_result(), "exports": [{"format": "keras"}]})
    with pytest.raises(UsageError, match="deployment finding does not match"):
        _from_run("v1", tmp_path, info, common)


@pytest.fixture(scope="module")
def released_regressor(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> dict:
    """diabetes sorted by bmi: the first release learns on the lower 60%, the second sample is the
    upper 60% (an overlap of 20%). A linear model is hard to beat on 265 rows, so the release is a
    network trained elsewhere on every diabetes row (`--from FILE.keras`), read by the first run's
    own preprocessing and served, as ml-expert serves a regressor, through its target_scale layer:
    v1 is a regression network, kept with its preprocessing in the version's source/."""
    import joblib
    import keras

    from ml_expert.tools.data.prepare import prepare_data
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, with_target_scale

    root = tmp_path_factory.mktemp("regression")
    frame = pd.read_csv(datasets / "diabetes.csv").sort_values("bmi", kind="stable")
    cut = int(len(frame) * 0.6)
    first, second = root / "first.csv", root / "second.csv"
    frame.iloc[:cut].to_csv(first, index=False)
    frame.iloc[len(frame) - cut :].sample(frac=1.0, random_state=0).to_csv(second, index=False)
    # the preprocessing the first run fits (the same data and seed give the same split and fit)
    prepared = prepare_data(str(first), "target", 2, root / "prepared")
    preprocessor = joblib.load(prepared.files["preprocessor"])
    x = np.asarray(preprocessor.transform(frame.drop(columns="target")), dtype="float32")
    y = frame["target"].to_numpy("float64")
    mean, std = float(y[:cut].mean()), float(y[:cut].std())
    network = build_dnn(
        x.shape[1], "regression", 1, DNNConfig(hidden_units=[128, 128], dropout=0.0, l2=0.0), 0
    )
    network.fit(x, ((y - mean) / std).astype("float32"), epochs=100, batch_size=32, verbose=0)
    with_target_scale(network, mean, std, name="pretrained_served").save(root / "pretrained.keras")
    keras.backend.clear_session()
    ws = root / "ws"
    proc = _run(first, ws, "--from", str(root / "pretrained.keras"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "ws": ws, "second": second, "scale": (mean, std), "v1": json.loads(proc.stdout)}


def test_production_regression_network_is_fine_tuned_on_its_own_scale(
    released_regressor: dict, tmp_path: Path
) -> None:
    """`--from production` when production is a regression network: it continues on the new targets
    standardised with the release's mean and std (recorded), competes as released and fine-tuned with
    the models from scratch, and the shipped network's `predict` is in the target's units."""
    import joblib
    import keras

    from ml_expert.tools.training.dnn import target_scale, without_target_scale

    ws, (mean, std) = released_regressor["ws"], released_regressor["scale"]
    v1 = Registry(ws).show("production")
    assert v1["version"] == "v1" and v1["source"]["kind"] == "keras", v1
    released = keras.saving.load_model(Path(v1["path"]) / "source" / "model.keras", compile=False)
    assert target_scale(released) == pytest.approx((mean, std))

    # --force: both networks score close on the new test rows (v1 saw every diabetes row; R² ~0.997
    # each when it was pretrained 400 epochs), so which is ahead there is a matter of chance; the gate's
    # refusal of a worse candidate is tested on the classification path above. Here the comparison must
    # still be made and recorded.
    proc = _run(released_regressor["second"], ws, "--from", "production", "--force")
    assert proc.returncode == 0, proc.stderr[-3000:]  # the old refusal (exit 2) is gone
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    training = training.get("value", training)
    board = {c["name"]: c for c in training["leaderboard"]}
    assert {"released", "fine_tuned", "linear"} <= set(board)
    assert board["released"]["kind"] == board["fine_tuned"]["kind"] == "keras"
    assert board["fine_tuned"]["parent"] == "v1" and "continued" in board["fine_tuned"]["detail"]
    fine_tuning = training["fine_tuning"]
    assert fine_tuning["parent"] == "v1" and fine_tuning["preprocessing"] == "the release's"
    assert (fine_tuning["target_mean"], fine_tuning["target_std"]) == pytest.approx((mean, std))
    decisions = {
        d["decision"]: d["reason"] for d in json.loads((run_dir / "run.json").read_text())["decisions"]
    }
    kept = f"fine-tune on the target standardised with v1's mean {mean:.6g}, std {std:.6g}"
    assert kept in decisions and "are not used" in decisions[kept]
    # the fine-tuned copy learnt further (its weights moved) under the release's scale, not the new rows'
    tuned = keras.saving.load_model(board["fine_tuned"]["path"], compile=False)
    assert target_scale(tuned) == pytest.approx((mean, std))
    assert any(
        not np.allclose(a, b) for a, b in zip(tuned.get_weights(), released.get_weights(), strict=True)
    )
    metrics = json.loads((run_dir / "findings" / "metrics.json").read_text())
    metrics = metrics.get("value", metrics)
    assert metrics["production_on_test"]["version"] == "v1"  # scored in the target's units
    check = {
        c["name"]: c for c in json.loads((run_dir / "run.json").read_text())["gates"]["release"]["checks"]
    }
    assert check["not_worse_than_production"]["threshold"] == metrics["production_on_test"]["test_score"]

    chosen = training["chosen"]
    assert chosen["kind"] == "keras", {n: c["val_score"] for n, c in board.items()}
    v2 = Registry(ws).show("production")
    assert v2["version"] == "v2" and v2["parent"] == "v1" and v2["source"]["kind"] == "keras"
    # `predict` serves the network in the target's units: its z-scores times the release's std plus its mean
    from cli_helpers import predict_rows

    rows = pd.read_csv(released_regressor["second"]).drop(columns="target").head(40)
    predicted = predict_rows("production", rows, ws, tmp_path, proba=False)["prediction"].to_numpy()
    shipped = keras.saving.load_model(chosen["path"], compile=False)
    features = joblib.load(chosen["preprocessor"]).transform(rows).astype("float32")
    z = np.asarray(without_target_scale(shipped).predict(features, verbose=0)).ravel()
    np.testing.assert_allclose(predicted, z * std + mean, rtol=1e-4, atol=1e-2)
    assert predicted.min() > 10  # the target's units (25 to 346), not z-scores

    # a regression network without the target_scale layer has no known output scale: refused
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn

    bare = tmp_path / "bare.keras"
    build_dnn(released.input_shape[-1], "regression", 1, DNNConfig(hidden_units=[8]), 0).save(bare)
    proc = _run(released_regressor["second"], tmp_path / "ws", "--from", str(bare))
    assert proc.returncode == 2 and "output scale is unknown" in proc.stdout + proc.stderr, proc.stderr[
        -2000:
    ]
