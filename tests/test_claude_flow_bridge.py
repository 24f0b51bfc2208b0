"""The claude-flow memory bridge against a fake `claude-flow` CLI on PATH (fast, no npm).

See tests/claude_flow_fake.py for what the fake answers; tests/test_claude_flow_real.py runs the
same flow against the real CLI from npm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import claude_flow_fake
import pytest
from phase_helpers import deployment_result, validation_result

from ml_expert import run
from ml_expert.memory.claude_flow import (
    ClaudeFlowBridge,
    ClaudeFlowCLI,
    ClaudeFlowError,
    check_cli,
    parse_version,
)
from ml_expert.memory.summary import build_summary

fake_claude_flow = claude_flow_fake.fake_claude_flow  # the fixture
_calls, _db = claude_flow_fake.calls, claude_flow_fake.db


def test_version_check_refuses_a_2x_cli(fake_claude_flow: dict[str, Path], monkeypatch, tmp_path) -> None:
    assert parse_version("ruflo v3.43.0") == ("3.43.0", 3)
    assert parse_version("claude-flow v2.0.0-alpha.91")[1] == 2
    cli = check_cli(tmp_path)
    assert cli.version == "3.43.0" and cli.command == [str(fake_claude_flow["exe"])]
    monkeypatch.setenv("FAKE_CF_VERSION", "2.0.0-alpha.91")
    with pytest.raises(ClaudeFlowError, match=r"2\.x CLI: its `memory store` reports success"):
        check_cli(tmp_path)


def test_batch_sync_stores_everything_in_one_import_and_reads_back(
    fake_claude_flow: dict[str, Path], monkeypatch
) -> None:
    bridge = ClaudeFlowBridge(
        ClaudeFlowCLI(command=[str(fake_claude_flow["exe"])], version="3.43.0", source="t")
    )
    findings = {"metrics": {"accuracy": 0.93}, "guardrails/data": {"passed": True}, "summary": {"text": "x"}}
    report = bridge.sync("run-1", findings)
    assert report.ok and report.stored == 4 and report.failed == 0, report
    calls = _calls(fake_claude_flow["log"])
    assert [c[:2] for c in calls].count(["memory", "import"]) == 1
    assert [c[:2] for c in calls].count(["memory", "export"]) == 1
    assert len(calls) == 4  # import, summary and latest with tags, export: whatever the number of findings
    db = _db(fake_claude_flow)
    assert json.loads(db["ml-expert/run-1/metrics"]["content"]) == {"accuracy": 0.93}
    assert db["ml-expert/latest"]["content"] == "run-1"
    assert db["ml-expert/run-1/summary"]["tags"] == ["run:run-1", "phase:finish", "agent:ml-expert"]
    assert bridge.retrieve("run-1/metrics") == {"accuracy": 0.93}  # a [WARN] line before the JSON

    monkeypatch.setenv("FAKE_CF_CORRUPT", "/metrics")
    report = bridge.sync("run-2", findings)
    assert not report.ok and report.failed == 1 and "differs" in report.errors["run-2/metrics"]


def test_run_syncs_once_at_the_end_and_reports_counts(
    workspace: Path, fake_claude_flow: dict[str, Path]
) -> None:
    result = run("iris", train_dnn=False, budget=30, seed=6, workspace=workspace, claude_flow_sync=True)
    assert result.status == "finished"
    keys = {p.name[:-5].replace("__", "/") for p in (Path(result.run_dir) / "findings").glob("[!_]*.json")}
    assert "summary" in keys
    assert result.claude_flow is not None and result.claude_flow.ok, result.claude_flow
    assert result.claude_flow.stored == len(keys) + 1  # every finding and `latest`
    db = _db(fake_claude_flow)
    for key in keys:
        on_disk = json.loads(
            (Path(result.run_dir) / "findings" / (key.replace("/", "__") + ".json")).read_text()
        )
        assert json.loads(db[f"ml-expert/{result.run_id}/{key}"]["content"]) == on_disk
    assert db["ml-expert/latest"]["content"] == result.run_id
    summary = json.loads(db[f"ml-expert/{result.run_id}/summary"]["content"])
    assert "iris" in summary["text"] and summary["model"] in summary["text"] and "dummy" in summary["text"]
    verbs = [c[:2] for c in _calls(fake_claude_flow["log"])]
    assert verbs.count(["--version"]) == 1 and verbs.count(["memory", "import"]) == 1
    assert len(verbs) == 5  # the check, then four calls at the end


def test_uninitialised_cli_is_one_warning_and_a_2x_cli_is_refused_up_front(
    workspace: Path, fake_claude_flow: dict[str, Path], monkeypatch
) -> None:
    monkeypatch.setenv("FAKE_CF_UNINITIALISED", "1")
    result = run("iris", train_dnn=False, budget=20, seed=1, workspace=workspace, claude_flow_sync=True)
    assert result.status == "finished"  # the bridge never fails a run
    record = json.loads((Path(result.run_dir) / "run.json").read_text())
    cf = [w for w in record["warnings"] if "claude-flow" in w]
    assert len(cf) == 1 and "not initialized" in cf[0], cf
    assert result.claude_flow is not None and result.claude_flow.failed > 1 and not result.claude_flow.ok

    monkeypatch.delenv("FAKE_CF_UNINITIALISED")
    monkeypatch.setenv("FAKE_CF_VERSION", "2.0.0-alpha.91")
    before = len(_calls(fake_claude_flow["log"]))
    result = run("iris", train_dnn=False, budget=20, seed=1, workspace=workspace, claude_flow_sync=True)
    record = json.loads((Path(result.run_dir) / "run.json").read_text())
    cf = [w for w in record["warnings"] if "claude-flow" in w]
    assert len(cf) == 1 and "2.x CLI" in cf[0], cf
    assert _calls(fake_claude_flow["log"])[before:] == [["--version"]]  # nothing stored
    assert result.claude_flow is not None and result.claude_flow.error


def test_sync_is_opt_in_and_the_cli_reports_it(workspace: Path, fake_claude_flow: dict[str, Path]) -> None:
    run("iris", train_dnn=False, budget=20, seed=2, workspace=workspace)
    assert _calls(fake_claude_flow["log"]) == []
    env = {**os.environ, "ML_EXPERT_CLAUDE_FLOW_SYNC": "1"}
    cmd = [sys.executable, "-m", "ml_expert", "run", "iris", "--no-dnn", "--budget", "20", "--json"]
    proc = subprocess.run(
        [*cmd, "--workspace", str(workspace)], capture_output=True, text=True, timeout=240, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["claude_flow"]["ok"] is True and out["claude_flow"]["stored"] >= 10
    status = subprocess.run(
        [sys.executable, "-m", "ml_expert", "status", out["run_id"], "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["claude_flow"]["stored"] == out["claude_flow"]["stored"]


def test_summary_says_dataset_model_score_against_dummy_gates_and_package() -> None:
    findings = {
        "data-analysis": {
            "source": "wine.csv",
            "fingerprint": "f" * 64,
            "task": "classification",
            "split_sizes": {"train": 100, "val": 15, "test": 15},
            "features": ["a", "b"],
            "preprocessor_sha256": "0" * 64,
        },
        "metrics": validation_result(
            model="random_forest", primary_metric="f1_macro", test_score=0.97, dummy_test_score=0.21
        ),
        "guardrails/data": {"passed": True},
        "guardrails/validation": {"passed": False},
        "deployment": deployment_result(package_dir="/ws/runs/r/deployment", model="random_forest"),
        "registry": {"model_name": "wine", "version": "v3", "aliases": {}, "registry": "/ws/registry"},
        "status": {"status": "refused", "reason": "validation gate refused"},
    }
    summary = build_summary("r", findings)
    for part in (
        "wine.csv",
        "130 rows",
        "random_forest",
        "f1_macro 0.9700",
        "0.2100 for the dummy",
        "refused by: validation",
        "/ws/runs/r/deployment",
        "wine v3",
        "refused",
    ):
        assert part in summary.text, (part, summary.text)
    assert summary.gates == {"data": True, "validation": False}
