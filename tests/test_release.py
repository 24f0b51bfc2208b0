"""A real run on titanic with planted markers: the tester's new figures, the release files, and
proof that no training value of an ID-like column leaks into any artifact, log or memory value.
Then the validation gate refusing on fairness, and the release gate refusing a worse model."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
from http_helpers import free_port, wait_for
from phase_helpers import deployment_result, validation_result

from ml_expert.graph.gates import release_gate
from ml_expert.registry import Registry

CLI = [sys.executable, "-m", "ml_expert"]
MARKER = f"MLX{uuid.uuid4().hex[:12]}Z"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory, datasets: Path, live_redis_url: str) -> dict:
    root = tmp_path_factory.mktemp("release")
    frame = pd.read_csv(datasets / "titanic.csv")
    frame.insert(0, "passenger_code", [f"{MARKER}-{i}" for i in range(len(frame))])
    data = root / "titanic_marked.csv"
    frame.to_csv(data, index=False)
    ws = root / "ws"
    proc = subprocess.run(
        [*CLI, "run", str(data), "--seed", "3", "--budget", "60", "--no-dnn", "--json"]
        + ["--workspace", str(ws), "--memory", live_redis_url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    return {"payload": payload, "proc": proc, "ws": ws, "data": data, "run_dir": Path(payload["run_dir"])}


def test_tester_reports_calibration_fairness_latency(released: dict) -> None:
    run_dir = released["run_dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 < metrics["calibration"]["brier_score"] < 0.25
    assert (run_dir / "reliability_curve.png").read_bytes()[:4] == b"\x89PNG"
    # auto-detected: sex (categorical) and age (binned into quantiles plus "missing")
    assert set(metrics["fairness"]) == {"sex", "age"}
    assert set(metrics["fairness"]["sex"]["per_group"]) == {"female", "male"}
    assert len(metrics["fairness"]["age"]["per_group"]) <= 5
    chosen = metrics["model"]
    assert set(metrics["latency"]) == {f"{chosen}/joblib", f"{chosen}/onnx", "package (inference.py)"}
    for lat in metrics["latency"].values():
        assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] and lat["batch_rows_per_second"] > 0
    assert all(r["fit_seconds"] >= 0 for r in metrics["leaderboard"])
    report = (run_dir / "evaluation_report.md").read_text()
    for section in ("Calibration", "Fairness by group", "Latency and throughput", "reliability_curve.png"):
        assert section in report
    # Rendered, never edited: the deployment renders the tester's kept inputs again with the latency.
    from ml_expert.tools.validation.report_file import read_inputs, render
    from ml_expert.tools.validation.report_inputs import SupervisedReportInputs

    kept = read_inputs(run_dir)
    assert isinstance(kept, SupervisedReportInputs) and report.startswith(render(kept).rstrip("\n"))
    assert report.count("## Latency and throughput") == 1
    gates = json.loads((run_dir / "run.json").read_text())["gates"]
    checks = {c["name"]: c for c in gates["validation"]["checks"] + gates["release"]["checks"]}
    assert checks["fairness_sex"]["value"] == metrics["fairness"]["sex"]["gap"]
    assert "not enforced" in checks["fairness_sex"]["detail"]  # auto-detected: reported only
    assert checks["latency_p99"]["passed"] and checks["latency_p99"]["threshold"] == 100.0
    assert checks["overfit_gap"]["value"] is not None
    assert checks["test_split_read_once"]["value"] == {
        "reads_with_results": 1,
        "interrupted_reads": 0,
        "models": 1,
    }


def test_package_has_dockerfile_and_serves_without_ml_expert(released: dict, tmp_path: Path) -> None:
    package = released["run_dir"] / "deployment"
    manifest = json.loads((package / "manifest.json").read_text())
    assert {"Dockerfile", "server.py", "training_stats.json"} <= set(manifest["files"])
    dockerfile = (package / "Dockerfile").read_text()
    assert "FROM python:3.11.7-slim" in dockerfile and "server.py" in dockerfile
    assert all("==" in line for line in (package / "requirements.txt").read_text().split())
    assert "Measured latency" in (package / "README.md").read_text()
    # the container's server, run from a copy of the package with only its own files
    copy = tmp_path / "pkg"
    copy.mkdir()
    for name in [*manifest["files"], "manifest.json"]:
        (copy / name).write_bytes((package / name).read_bytes())
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-S", str(copy / "server.py"), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": ":".join(p for p in sys.path if "site-packages" in p)},
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        row = {"pclass": 3, "sex": "female", "age": 22, "sibsp": 0, "parch": 0, "fare": 7.9, "embarked": "S"}
        row |= {"ticket": None, "cabin": None}  # kept (grouped) categorical columns, missing here
        row |= {"name": "Doe, Miss. Jane", "home.dest": None}  # free text (bag of words); one missing
        reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"rows": [row, row]})
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2
        bad = httpx.post(f"http://127.0.0.1:{port}/predict", json={**row, "age": "old"})
        assert bad.status_code == 422 and "age" in bad.json()["error"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    # a tampered package refuses to start
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0")
    proc = subprocess.run(
        [sys.executable, str(copy / "server.py"), "--port", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "model.onnx" in proc.stderr


def test_planted_markers_appear_in_no_artifact_log_or_memory(released: dict, live_redis_url: str) -> None:
    proc, ws = released["proc"], released["ws"]
    assert MARKER not in proc.stdout and MARKER not in proc.stderr
    scanned = 0
    for path in ws.rglob("*"):
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes(), path
            scanned += 1
    assert scanned > 20
    client = redis.Redis.from_url(live_redis_url, decode_responses=True)
    keys = client.keys(f"ml-expert/{released['payload']['run_id']}/*")
    assert len(keys) >= 6
    for key in keys:
        assert MARKER not in (client.get(key) or ""), key
    # the marker column is really in the data the pipeline read
    assert MARKER in released["data"].read_text()


def test_validation_gate_enforces_named_sensitive_columns(released: dict) -> None:
    proc = subprocess.run(
        [*CLI, "run", str(released["data"]), "--seed", "3", "--budget", "60", "--no-dnn", "--json"]
        + ["--sensitive", "sex", "--sensitive", "passenger_code", "--max-fairness-gap", "0.2"]
        + ["--workspace", str(released["ws"]), "--memory", "embedded"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 5, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    verdict = json.loads((Path(payload["run_dir"]) / "run.json").read_text())["gates"]["validation"]
    failed = " ".join(verdict["failed"])
    assert "fairness_sex" in failed and "equalized odds" in failed
    assert "fairness_passenger_code" in failed and "not a model input" in failed
    assert Registry(released["ws"]).show("production")["run_id"] == released["payload"]["run_id"]


def test_release_gate_refuses_a_worse_model_unless_forced(released: dict) -> None:
    production = Registry(released["ws"]).show("production")

    def verdict(score: float, force: bool = False, fingerprint: str | None = None) -> dict:
        state = {
            "options": {
                "workspace": str(released["ws"]),
                "seed": 3,
                "force": force,
                "model_name": production["model_name"],  # compared with that model's production
            },
            "data": {
                "fingerprint": fingerprint or production["data_fingerprint"],
                "split_sizes": production["split_sizes"],
            },
            "validation": validation_result(primary_metric=production["primary_metric"], test_score=score),
            "deployment": deployment_result(),
        }
        checks = {c.name: c for c in release_gate(state).checks}
        return checks["not_worse_than_production"].model_dump()

    assert not verdict(production["test_score"] - 0.05)["passed"]
    assert verdict(production["test_score"] - 0.05, force=True)["passed"]
    assert verdict(production["test_score"])["passed"]
    other = verdict(0.0, fingerprint="0" * 64)
    assert other["passed"] and "other held-out data" in other["detail"]


def test_release_gate_checks_latency_and_refuses_half_done_exports(released: dict) -> None:
    run = json.loads((released["run_dir"] / "run.json").read_text())
    latency = next(c for c in run["gates"]["release"]["checks"] if c["name"] == "latency_p99")["value"]
    package = released["run_dir"] / "deployment"
    manifest = json.loads((package / "manifest.json").read_text())
    good_export = {"format": "onnx", "path": "model.onnx", "parity": {"passed": True}, "error": None}
    bad_export = {"format": "tflite", "path": "x.tflite", "parity": {"passed": False}, "error": "failed"}

    def checks(max_ms: float, exports: list[dict], drop: str | None = None) -> dict:
        files = {k: v for k, v in manifest["files"].items() if k != drop}
        state = {
            "options": {"workspace": str(released["ws"]), "seed": 3, "max_latency_ms": max_ms},
            "data": {},
            "validation": validation_result(),
            "deployment": deployment_result(
                exports=exports,
                package_dir=str(package),
                manifest={"files": files},
                package_latency={
                    "single_row_calls": 20,
                    "p50_ms": latency / 2,
                    "p95_ms": latency,
                    "p99_ms": latency,
                    "batch_rows": 50,
                    "batch_rows_per_second": 1e4,
                },
            ),
        }
        return {c.name: c for c in release_gate(state).checks}

    assert checks(latency * 2, [good_export])["latency_p99"].passed
    slow = checks(latency / 2, [good_export])["latency_p99"]
    assert not slow.passed and slow.value == latency and slow.threshold == latency / 2
    broken = checks(100, [good_export, bad_export])
    assert not broken["export_tflite_matches"].passed
    assert not checks(100, [good_export], drop="Dockerfile")["package_complete"].passed
