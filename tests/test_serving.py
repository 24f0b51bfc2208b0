"""`ml-expert serve` as a real uvicorn process on 127.0.0.1, hit by a real HTTP client (httpx)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
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
    copy = {**registry.show("v1"), "run_id": "canary-copy", "note": "canary copy"}  # one version per run id
    registry.register(registry.path("v1"), copy, promote=False)
    return ws


@pytest.fixture(scope="module")
def server(workspace_with_two_versions: Path):
    port = free_port()
    key_file = workspace_with_two_versions.parent / "api-key"
    key_file.write_text(KEY + "\n")
    proc = subprocess.Popen(
        [
            *CLI,
            "serve",
            "production",
            "--port",
            str(port),
            "--canary",
            "v2:0.5",
            "--api-key-file",
            str(key_file),
        ]
        + ["--workspace", str(workspace_with_two_versions)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ML_EXPERT_HEADER_TIMEOUT_S": "2", "ML_EXPERT_BODY_TIMEOUT_S": "2"},
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
    for guarded in ("/metrics", "/docs", "/openapi.json"):  # behind the key too
        assert httpx.get(f"{server['base']}{guarded}").status_code == 401, guarded
    openapi = server["client"].get("/openapi.json").json()
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
    registry.register(registry.path("v1"), {**registry.show("v1"), "run_id": "tampered-copy"}, promote=False)
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


def test_a_forged_path_never_reaches_metrics_and_labels_stay_bounded(server: dict) -> None:
    client = server["client"]
    # percent-encoded: the server decodes it into a path with a quote, a brace and newlines
    forged = "/x%22%7D%201%0Amlx_predict_rows_total%7Bversion=%22v2%22%7D%209999999%0A%23"
    assert client.get(forged).status_code == 404
    for i in range(300):
        client.get(f"/missing-{i}")
    text = client.get("/metrics").text
    assert "9999999" not in text and "missing-" not in text
    unmatched = [line for line in text.splitlines() if 'path="<unmatched>"' in line]
    assert len(unmatched) == 1 and int(unmatched[0].split()[-1]) >= 301


REST = b', "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}'
HOSTILE = {
    "deep nesting": b'{"rows": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    "NaN literal": b'{"sepal length (cm)": NaN' + REST,
    "Infinity literal": b'{"sepal length (cm)": -Infinity' + REST,
    "float32 overflow": json.dumps({**ROW, "sepal length (cm)": 1e39}).encode(),
    "huge exponent text": json.dumps({**ROW, "sepal length (cm)": "1e999"}).encode(),
    "900k digits": json.dumps({**ROW, "sepal length (cm)": "9" * 900_000}).encode(),
    "400-digit integer": b'{"sepal length (cm)": ' + b"9" * 400 + REST,
    "lone surrogate": b'{"sepal length (cm)": "\\ud800"' + REST,
    "empty batch": b'{"rows": []}',
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_are_a_422_naming_the_field(server: dict, name: str) -> None:
    response = server["client"].post(
        "/predict", content=HOSTILE[name], headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, (name, response.status_code, response.text[:300])
    detail = response.json()["detail"]
    if name not in ("deep nesting", "NaN literal", "Infinity literal", "empty batch"):
        assert "sepal length (cm)" in detail[0]["loc"], detail


def test_a_category_with_a_lone_surrogate_is_a_row_error(workspace_with_two_versions: Path) -> None:
    from ml_expert.runtime.inference import ModelInference, SchemaError

    model = ModelInference(Registry(workspace_with_two_versions).path("v1"))
    model.columns = [{"name": "colour", "key": "colour", "kind": "categorical"}]
    with pytest.raises(SchemaError) as caught:
        model.validate([{"colour": "red"}, {"colour": "bad \ud800"}])
    assert (caught.value.row, caught.value.field) == (1, "colour")


def test_predict_command_refuses_out_of_range_rows(workspace_with_two_versions: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(ROW) + "\n5.1,3.5,1.4,0.2\n1e39,3.5,1.4,0.2\n")
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [
            *CLI,
            "predict",
            str(Registry(workspace_with_two_versions).path("v1")),
            str(rows),
            "--output",
            str(out),
        ]
        + ["--workspace", str(workspace_with_two_versions)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, (proc.stdout, proc.stderr[-1000:])
    message = " ".join(proc.stderr.split())  # rich may wrap the line
    assert "row 1" in message and "sepal length (cm)" in message and "Traceback" not in message
    assert not out.exists()


HTTP_FLOOR_MS = 5.0


def test_health_answers_while_batches_run(server: dict) -> None:
    """Inference runs off the event loop: /health does not wait for 1,000-row batches.

    One client sends batches back to back. On the loop, a probe waits for the batch in progress
    (half a batch's time on average); off it, only for the GIL. Compared with the batches' own
    time, so a busy machine does not fail it; benchmarks/serving.py measures the absolute figure
    (target p99 < 50 ms)."""
    batch = {"rows": [ROW] * 1000}
    stop = threading.Event()
    batch_ms: list[float] = []

    def load() -> None:
        with httpx.Client(base_url=server["base"], headers={"X-API-Key": KEY}, timeout=30) as c:
            while not stop.is_set():
                start = time.perf_counter()
                assert c.post("/predict", json=batch).status_code == 200
                batch_ms.append((time.perf_counter() - start) * 1000)

    workers = [threading.Thread(target=load)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        times = []
        with httpx.Client(base_url=server["base"], timeout=10) as c:
            for _ in range(20):
                start = time.perf_counter()
                assert c.get("/health").status_code == 200
                times.append((time.perf_counter() - start) * 1000)
                time.sleep(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join()
    times.sort()
    batch_ms.sort()
    # + HTTP_FLOOR_MS: a probe's own round trip and a GIL hand-over (CI measured 6.9 ms against
    # 25 ms batches on an idle machine); on the loop a probe waits half a batch on top of that.
    assert times[len(times) // 2] < 0.25 * batch_ms[len(batch_ms) // 2] + HTTP_FLOOR_MS, (times, batch_ms)


def test_half_sent_requests_are_cut_off(server: dict) -> None:
    host, port = server["base"].removeprefix("http://").split(":")
    started = time.monotonic()
    headers_only = socket.create_connection((host, int(port)))
    headers_only.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    body_short = socket.create_connection((host, int(port)))
    body_short.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    for sock in (headers_only, body_short):
        sock.settimeout(15)
        while sock.recv(4096):  # until the server closes the connection
            pass
        sock.close()
    assert time.monotonic() - started < 12  # closed by the 2 s read timeouts, not left open


@pytest.mark.parametrize("sent", [True, "TRUE", "true", " True "])
def test_a_boolean_category_sent_as_json_is_the_category_training_saw(sent: object) -> None:
    """A TRUE/false column is read by pandas as booleans, so training's category is "True". JSON
    true reached the model as 1 through serve's row model (an unseen category, silently), and
    "TRUE" as "TRUE"; the package's own server said "True": the two answered differently."""
    from ml_expert.runtime.inference import category_text
    from ml_expert.serving.app import row_model

    row = row_model({"columns": [{"name": "flag", "key": "flag", "kind": "categorical"}]})
    value = row.model_validate({"flag": sent}).model_dump(by_alias=True)["flag"]
    assert category_text(value) == "True" and category_text(1) == "1"
