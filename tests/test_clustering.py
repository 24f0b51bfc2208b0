"""Clustering (issue 15): data without a label through the same five phases, gates and package.

Real data (iris with its label column removed, penguins with a categorical column), the real
CLI, the real ONNX export reloaded in onnxruntime, and a gate that refuses structureless noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from ml_expert.runtime.inference import ModelInference
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame, to_onnx_feed
from ml_expert.tools.deployment.exports import compare_clusters
from ml_expert.tools.selection.clustering import k_range, select_clustering
from ml_expert.tools.validation.clustering import chance_tests, cluster_profiles

CLI = [sys.executable, "-m", "ml_expert"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def iris_without_label(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "iris_rows.csv"
    pd.read_csv(datasets / "iris.csv").drop(columns=["target"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def iris_run(iris_without_label: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real run through the CLI: no --target and no `target` column, so clustering by itself."""
    ws = tmp_path_factory.mktemp("ws")
    proc = _cli("run", str(iris_without_label), "--workspace", str(ws), "--budget", "30", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"result": json.loads(proc.stdout), "workspace": ws}


def _schema(frame: pd.DataFrame) -> InputSchema:
    columns = [
        ColumnSpec(name=c, kind="numeric" if pd.api.types.is_numeric_dtype(frame[c]) else "categorical")
        for c in frame.columns
    ]
    return InputSchema(task="clustering", target="", columns=columns)


def test_cli_clusters_a_table_without_a_label(iris_run: dict) -> None:
    result = iris_run["result"]
    assert result["ok"] and result["status"] == "finished" and result["task"] == "clustering"
    assert result["chosen_model"] in ("kmeans", "gaussian_mixture")
    assert all(result["gates"][g] for g in ("data", "plan", "training", "validation", "release"))
    run_dir = Path(result["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())
    decided = {d["decision"]: d["reason"] for d in record["decisions"]}
    assert "no target given" in decided["task is clustering"]
    assert any(d.startswith("DBSCAN") and "never shipped" in r for d, r in decided.items())
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    names = {c["name"] for c in selection["leaderboard"]}
    assert names == {"dummy", "kmeans", "gaussian_mixture", "dbscan"}
    assert len(selection["clustering"]["kmeans_by_k"]) == len(selection["clustering"]["k_range"]) >= 2
    assert all("bic" in row for row in selection["clustering"]["gmm_by_k"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["primary_metric"] == "silhouette" and metrics["test_score"] > 0.3
    chance = metrics["clustering"]["chance"]
    assert {c["reference"] for c in chance} == {"permuted", "gaussian"} and all(c["passed"] for c in chance)
    assert record["test_reads"] == 1
    report = (run_dir / "evaluation_report.md").read_text()
    for section in ("Better than chance", "Cluster sizes", "Cluster profiles", "Latency and throughput"):
        assert section in report


def test_onnx_export_agrees_with_the_fitted_model(iris_run: dict, iris_without_label: Path) -> None:
    run_dir = Path(iris_run["result"]["run_dir"])
    chosen = iris_run["result"]["chosen_model"]
    pipeline = joblib.load(run_dir / "exports" / chosen / "model.joblib")
    package = run_dir / "deployment"
    schema = InputSchema.model_validate_json((package / "schema.json").read_text())
    frame = pd.read_csv(iris_without_label)
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names[0] == "cluster" and names[1] in ("distances", "probabilities")
    clusters, scores = session.run(None, to_onnx_feed(frame, schema))
    model_frame = to_model_frame(frame, schema)
    assert np.array_equal(np.ravel(clusters), pipeline.predict(model_frame))
    features, model = pipeline[:-1].transform(model_frame), pipeline.steps[-1][1]
    expected = model.transform(features) if names[1] == "distances" else model.predict_proba(features)
    np.testing.assert_allclose(scores, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    deployment = json.loads((run_dir / "findings" / "deployment.json").read_text())
    assert all(e["parity"]["passed"] for e in deployment["exports"])
    # the package ships aggregates only: every profiled cluster holds >= 5 training rows
    profiles = json.loads((package / "cluster_profiles.json").read_text())
    assert profiles and all(p["rows"] >= 5 for p in profiles)
    shipped = (package / "cluster_profiles.json").read_text()
    train = pd.read_parquet(run_dir / "data" / "train.parquet")
    row = train.iloc[0]
    assert not all(f"{row[c.key]}" in shipped for c in schema.columns)


def test_predict_returns_a_cluster_column(iris_run: dict, iris_without_label: Path, tmp_path: Path) -> None:
    out = tmp_path / "clusters.csv"
    proc = _cli(
        "predict",
        iris_run["result"]["run_id"],
        str(iris_without_label),
        "--workspace",
        str(iris_run["workspace"]),
        "-o",
        str(out),
        "--proba",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    predicted = pd.read_csv(out)
    assert predicted.columns[0] == "cluster" and len(predicted) == 150
    k = json.loads((Path(iris_run["result"]["run_dir"]) / "metrics.json").read_text())["test"]["n_clusters"]
    assert set(predicted["cluster"]) <= set(range(k)) and predicted["cluster"].nunique() >= 2
    assert len(predicted.columns) == 1 + k  # distance_<c> or probability_<c>
    package = ModelInference(Path(iris_run["result"]["run_dir"]) / "deployment")
    assert package.predict(pd.read_csv(iris_without_label).head(5)) == predicted["cluster"].head(5).tolist()


VIRGINICA = {"sepal length (cm)": 6.7, "sepal width (cm)": 3.0, "petal length (cm)": 5.6}
VIRGINICA["petal width (cm)"] = 2.1


def test_serve_answers_with_clusters(iris_run: dict) -> None:
    import httpx
    from http_helpers import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "production", "--port", str(port), "--workspace", str(iris_run["workspace"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    row = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5}
    row |= {"petal length (cm)": 1.4, "petal width (cm)": 0.2}
    try:
        wait_for(f"{base}/health")
        body = httpx.post(f"{base}/predict", json={"rows": [row, VIRGINICA]}).json()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    k = json.loads((Path(iris_run["result"]["run_dir"]) / "metrics.json").read_text())["test"]["n_clusters"]
    assert len(body["predictions"]) == 2 and set(body["predictions"]) <= set(range(k))
    assert body["predictions"][0] != body["predictions"][1]  # a textbook setosa and virginica
    scores = body.get("distances") or body.get("probabilities")
    assert scores is not None and len(scores[0]) == k


def test_gate_refuses_random_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    noise = tmp_path / "noise.csv"
    pd.DataFrame(rng.uniform(size=(240, 4)), columns=["a", "b", "c", "d"]).to_csv(noise, index=False)
    ws = tmp_path / "ws"
    proc = _cli("run", str(noise), "--task", "clustering", "--workspace", str(ws), "--budget", "30", "--json")
    assert proc.returncode == 5, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "refused" and "better_than_chance" in result["reason"]
    assert result["gates"]["validation"] is False and "release" not in result["gates"]
    assert not (Path(result["run_dir"]) / "deployment" / "manifest.json").exists()


def test_langgraph_input_with_task_clustering_holds_the_label_aside(datasets: Path, workspace: Path) -> None:
    """A parent graph passes `task` in the options; the named target column is never clustered on."""
    from ml_expert import build_graph

    options = {"workspace": str(workspace), "budget": 30, "seed": 5, "task": "clustering"}
    out = build_graph().invoke({"data": str(datasets / "penguins.csv"), "options": options})
    assert out["status"] == "finished", out.get("reason")
    assert out["metrics"]["silhouette"] > 0 and "deployment" in out["artifacts"]
    schema = json.loads((Path(out["artifacts"]["deployment"]) / "schema.json").read_text())
    assert schema["task"] == "clustering" and schema["target"] == "target"
    assert "target" not in {c["name"] for c in schema["columns"]}
    record = json.loads(Path(out["artifacts"]["run_json"]).read_text())
    reason = next(d["reason"] for d in record["decisions"] if d["decision"] == "task is clustering")
    assert "asked for" in reason and "'target' is held aside" in reason


def test_task_option_is_validated(tmp_path: Path) -> None:
    proc = _cli("run", "iris", "--task", "segmentation", "--workspace", str(tmp_path), "--json")
    assert proc.returncode == 2 and "--task" in proc.stdout + proc.stderr


def test_selection_measures_every_candidate_on_real_data(datasets: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(datasets / "penguins.csv").drop(columns=["target"])
    schema = _schema(frame)
    rows = to_model_frame(frame, schema).sample(frac=1.0, random_state=0)
    train, val = rows.iloc[:200], rows.iloc[200:270]
    result = select_clustering(schema, train, val, 0, tmp_path)
    by_name = {c.name: c for c in result.leaderboard}
    assert by_name["dummy"].val_score == 0.0 and not by_name["dummy"].shippable
    assert not by_name["dbscan"].shippable and "training rows" in by_name["dbscan"].why_not_shipped
    chosen = by_name[result.chosen]
    assert chosen.shippable and chosen.val_score > 0.2 and chosen.stability is not None
    assert min(chosen.train_cluster_sizes) >= 5 and Path(chosen.path).is_file()
    assert result.k_range == k_range(200)[0] == list(range(2, 11))  # min(10, sqrt(200), 200/5)


def test_chance_test_tells_structure_from_noise() -> None:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.3, size=(60, 3)) for c in (0.0, 3.0)]).astype(np.float32)
    noise = rng.uniform(size=(120, 3)).astype(np.float32)
    for data, structured in ((blobs, True), (noise, False)):
        model = KMeans(2, n_init=10, random_state=0).fit(data)
        tests = chance_tests(model, data, seed=0)
        assert all(t.passed for t in tests) is structured, [t.model_dump() for t in tests]


def test_profiles_hold_aggregates_of_five_rows_or_more() -> None:
    frame = pd.DataFrame({"x": np.arange(20, dtype=float), "colour": ["red"] * 12 + ["blue"] * 8})
    schema = _schema(frame)
    labels = np.array([0] * 17 + [1] * 3)
    profiles = cluster_profiles(to_model_frame(frame, schema), labels, schema)
    assert profiles[1]["rows"] == 3 and "numeric" not in profiles[1]  # too few rows: size only
    assert set(profiles[0]["categorical"]["colour"]) == {"red", "blue"}
    assert profiles[0]["numeric"]["x"]["mean"] == pytest.approx(8.0)


def test_cluster_parity_excuses_only_near_ties() -> None:
    reference = {"cluster": np.array([0, 1]), "scores": np.array([[1.0, 2.0], [3.0, 3.00001]])}
    near_tie = {"cluster": np.array([0, 0]), "scores": reference["scores"]}
    wrong = {"cluster": np.array([1, 1]), "scores": reference["scores"]}
    assert compare_clusters(reference, near_tie).passed
    assert not compare_clusters(reference, wrong).passed


def test_benchmark_reports_ari_against_the_true_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import clustering, report

    monkeypatch.setenv("ML_EXPERT_BENCH_WORK", str(tmp_path / "work"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    path = clustering.main(["--datasets", "iris", "--budget", "30", "--out-dir", str(tmp_path)])
    (row,) = json.loads(path.read_text())["rows"]
    assert row["status"] == "finished" and row["true_k"] == 3 and row["scored_by"].startswith("package")
    assert 0.3 < row["ari_all_rows"] <= 1.0 and 0.3 < row["kmeans_true_k_ari_all_rows"] <= 1.0
    rendered = report.render(tmp_path)
    assert "## Clustering against the true labels" in rendered and "| iris | 150 | 3 |" in rendered


def test_preparation_without_a_target(datasets: Path, tmp_path: Path) -> None:
    from ml_expert.errors import DataError
    from ml_expert.tools.data.prepare import prepare_data

    rows = tmp_path / "rows.csv"
    pd.read_csv(datasets / "wine.csv").rename(columns={"target": "cultivar"}).to_csv(rows, index=False)
    prepared = prepare_data(str(rows), "target", 0, tmp_path / "auto")
    assert prepared.task == "clustering" and "no target given" in prepared.task_reason
    assert "cultivar" in prepared.input_schema.names  # no target named: every column is clustered on
    dropped = prepared.duplicates_removed + prepared.outliers.dropped
    assert prepared.split_sizes.total + dropped == 178 and prepared.leakage_suspects == {}
    held = prepare_data(str(rows), "cultivar", 0, tmp_path / "held", task="clustering")
    assert "cultivar" not in held.input_schema.names and held.input_schema.target == "cultivar"
    with pytest.raises(DataError, match="Pass --target NAME"):
        prepare_data(str(rows), "target", 0, tmp_path / "asked", task="classification")
