"""`ml-expert serve` as a real uvicorn process on 127.0.0.1, hit by a real HTTP client (httpx)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from http_helpers import free_port, wait_for

from ml_expert import run
from ml_expert.registry import Registry

CLI = [sys.executable, "-m", "ml_expert"]
KEY = "test-key-123"


@pytest.fixture(scope="module")
def workspace_with_two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("serving") / "ws"
    result = run("iris", seed=11, budget=60, workspace=ws, memory="embedded", train_dnn=False)
    assert result.status == "finished", result.reason
    registry = Registry(ws)
    registry.register(registry.path("v1"), {**registry.show("v1"), "note": "canary copy"}, promote=False)
    return ws


@pytest.fixture(scope="module")
def server(workspace_with_two_versions: Path):
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "production", "--port", str(port), "--canary", "v2:0.5", "--api-key", KEY]
        + ["--workspace", str(workspace_with_two_versions)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/health")
        yield {"base": base, "client": httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=10)}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


def test_predict_one_row_and_a_batch_labelled_with_the_version(server: dict) -> None:
    client = server["client"]
    one = client.post("/predict", json=ROW)
    assert one.status_code == 200 and one.json()["predictions"] == [0]  # a textbook setosa
    assert one.headers["x-model-version"] == one.json()["version"]
    batch = client.post("/predict", json={"rows": [ROW, {**ROW, "petal length (cm)": "5.9"}]})
    body = batch.json()
    assert len(body["predictions"]) == 2 and len(body["probabilities"][0]) == 3
    # canary: about half of the requests answered by v2, every answer labelled
    versions = Counter(client.post("/predict", json=ROW).json()["version"] for _ in range(60))
    assert set(versions) == {"v1", "v2"} and min(versions.values()) >= 10


def test_bad_input_is_a_422_that_names_the_field(server: dict) -> None:
    client = server["client"]
    bad = client.post("/predict", json={**ROW, "petal width (cm)": "wide"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "petal width (cm)"]
    missing = client.post("/predict", json={"rows": [ROW, {k: v for k, v in ROW.items() if "sepal" in k}]})
    assert missing.status_code == 422
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} == {
        ("body", "rows", 1, "petal length (cm)"),
        ("body", "rows", 1, "petal width (cm)"),
    }
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    too_big = client.post("/predict", json={"rows": [ROW] * 20000})
    assert too_big.status_code == 413
    too_many = client.post("/predict", json={"rows": [ROW] * 1001})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "rows"]


def test_api_key_health_metadata_openapi(server: dict) -> None:
    assert httpx.post(f"{server['base']}/predict", json=ROW).status_code == 401
    assert (
        httpx.post(f"{server['base']}/predict", json=ROW, headers={"X-API-Key": "wrong"}).status_code == 401
    )
    assert httpx.get(f"{server['base']}/health").json() == {"status": "ok", "versions": ["v1", "v2"]}
    meta = server["client"].get("/metadata").json()
    assert meta["version"] == "v1" and meta["canary"] == {"version": "v2", "fraction": 0.5}
    assert meta["models"]["v1"]["metrics"]["accuracy"] > 0.8
    assert [c["name"] for c in meta["schema"]["columns"]] == list(ROW)
    openapi = httpx.get(f"{server['base']}/openapi.json").json()
    body = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "petal width (cm)" in json.dumps(body)


def test_prometheus_metrics_count_what_happened(server: dict) -> None:
    client = server["client"]
    before = client.get("/metrics").text
    answered = Counter(client.post("/predict", json=ROW).json()["version"] for _ in range(10))
    client.post("/predict", json={**ROW, "sepal width (cm)": "x"})
    after = client.get("/metrics").text

    def count(text: str, pattern: str) -> float:
        found = re.search(pattern + r" (\S+)", text)
        return float(found.group(1)) if found else 0.0

    for version, n in answered.items():
        label = f'mlx_requests_total{{path="/predict",version="{version}",status="200"}}'
        assert count(after, re.escape(label)) - count(before, re.escape(label)) == n
        hist = f'mlx_predict_latency_seconds_count{{version="{version}"}}'
        assert count(after, re.escape(hist)) - count(before, re.escape(hist)) == n
    status_422 = re.escape('mlx_requests_total{path="/predict",version="-",status="422"}')
    assert count(after, status_422) - count(before, status_422) == 1
    assert "# TYPE mlx_predict_latency_seconds histogram" in after


def test_drift_endpoint_and_offline_command(
    server: dict, workspace_with_two_versions: Path, tmp_path: Path
) -> None:
    client = server["client"]
    shifted = [{**ROW, "petal length (cm)": 6.5 + i / 100} for i in range(200)]
    client.post("/predict", json={"rows": shifted})
    report = client.get("/drift").json()
    answered = [v for v in ("v1", "v2") if report[v].get("rows")]
    assert answered and all("petal length (cm)" in report[v]["drifted"] for v in answered)
    # offline: the iris file itself does not drift; a shifted copy does
    iris = tmp_path / "iris.csv"
    shutil.copy(Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "iris.csv", iris)
    same = subprocess.run(
        [*CLI, "drift", "production", str(iris), "--json", "--workspace", str(workspace_with_two_versions)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["drifted"] == []
    import pandas as pd

    frame = pd.read_csv(iris)
    frame["sepal width (cm)"] += 1.0
    frame.to_csv(tmp_path / "moved.csv", index=False)
    moved = subprocess.run(
        [
            *CLI,
            "drift",
            "v1",
            str(tmp_path / "moved.csv"),
            "--json",
            "--workspace",
            str(workspace_with_two_versions),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(moved.stdout)["drifted"] == ["sepal width (cm)"]


def test_serve_refuses_a_tampered_version(workspace_with_two_versions: Path) -> None:
    ws = workspace_with_two_versions
    registry = Registry(ws)
    registry.register(registry.path("v1"), registry.show("v1"), promote=False)
    version = registry.versions()[-1]["version"]
    model = registry.path(version) / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1])
    proc = subprocess.run(
        [*CLI, "serve", version, "--port", str(free_port()), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3 and "model.onnx" in proc.stderr and "Traceback" not in proc.stderr
    bad = subprocess.run(
        [*CLI, "serve", "../v1", "--workspace", str(ws)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "invalid run id" in bad.stderr and "Traceback" not in bad.stderr
