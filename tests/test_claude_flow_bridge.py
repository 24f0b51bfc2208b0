"""The claude-flow memory bridge against a fake `claude-flow` executable on PATH (fast, no npm).

The fake answers like claude-flow 3.43's CLI, as read in its source and checked against the real
one (tests/test_claude_flow_real.py): `--version` prints `ruflo v3.43.0`; `memory store` takes
`--tags`; `memory import -i FILE` reads a `ruflo-memory-export/v1` document whose entries carry
`value`; `memory export -o FILE -n NS` writes one; `memory retrieve --format json` prints the
entry with the value under `content`. It keeps its entries in a JSON file, logs every call, and
can be told to be a 2.x CLI, to be uninitialised, or to corrupt one key.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert import run
from ml_expert.memory.claude_flow import (
    ClaudeFlowBridge,
    ClaudeFlowCLI,
    ClaudeFlowError,
    check_cli,
    parse_version,
)
from ml_expert.memory.summary import build_summary

FAKE = r"""#!{python}
import json, os, sys, time
db_path, log_path = os.environ["FAKE_CF_DB"], os.environ["FAKE_CF_LOG"]
argv = sys.argv[1:]
with open(log_path, "a") as fh:
    fh.write(json.dumps({{"argv": argv, "cwd": os.getcwd()}}) + "\n")

def flag(short, long, default=None):
    for name in (short, long):
        if name and name in argv:
            return argv[argv.index(name) + 1]
    return default

if argv == ["--version"]:
    print("ruflo v" + os.environ.get("FAKE_CF_VERSION", "3.43.0")); sys.exit(0)
if os.environ.get("FAKE_CF_UNINITIALISED") and argv[:2] in (["memory", "store"], ["memory", "import"]):
    print("[ERROR] Database not initialized. Run: claude-flow memory init"); sys.exit(1)
db = json.load(open(db_path)) if os.path.exists(db_path) else {{}}

def put(ns, key, value, tags):
    corrupt = os.environ.get("FAKE_CF_CORRUPT")
    if corrupt and corrupt in key:
        value = value.replace("}}", ', "tampered": true}}', 1)
    db[ns + "/" + key] = {{"key": key, "namespace": ns, "content": value, "tags": tags}}

if argv[:2] == ["memory", "store"]:
    key, value, ns = flag("-k", "--key"), flag(None, "--value"), flag("-n", "--namespace", "default")
    tags = [t for t in (flag(None, "--tags") or "").split(",") if t]
    put(ns, key, value, tags)
    print("[OK] Data stored successfully")
elif argv[:2] == ["memory", "import"]:
    doc = json.load(open(flag("-i", "--input")))
    for e in doc["entries"]:
        value = e["value"] if isinstance(e.get("value"), str) else json.dumps(e.get("value"))
        put(flag("-n", "--namespace") or e.get("namespace", "default"), e["key"], value, [])
    print("[OK] Imported")
elif argv[:2] == ["memory", "export"]:
    ns = flag("-n", "--namespace")
    entries = [{{"key": e["key"], "namespace": e["namespace"], "value": e["content"]}}
               for e in db.values() if ns is None or e["namespace"] == ns]
    json.dump({{"schema": "ruflo-memory-export/v1", "count": len(entries), "entries": entries}},
              open(flag("-o", "--output"), "w"))
    print("[OK] Exported")
elif argv[:2] == ["memory", "retrieve"]:
    entry = db.get(flag("-n", "--namespace", "default") + "/" + flag("-k", "--key"))
    if entry is None:
        print("[WARN] Key not found"); sys.exit(1)
    print("[WARN] Skipped helper auto-refresh")
    print(json.dumps(entry, indent=2))
elif argv[:1] == ["hooks"]:
    print("[OK] hook recorded")
else:
    print("unknown command", argv, file=sys.stderr); sys.exit(2)
json.dump(db, open(db_path, "w"))
"""


@pytest.fixture
def fake_claude_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "claude-flow"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    paths = {"exe": exe, "db": tmp_path / "cf-db.json", "log": tmp_path / "cf-calls.jsonl"}
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CF_DB", str(paths["db"]))
    monkeypatch.setenv("FAKE_CF_LOG", str(paths["log"]))
    for name in ("ML_EXPERT_CLAUDE_FLOW_BIN", "ML_EXPERT_CLAUDE_FLOW_SYNC", "FAKE_CF_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return paths


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []


def _db(paths: dict[str, Path]) -> dict[str, dict]:
    return json.loads(paths["db"].read_text())


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
    assert len(calls) == 4  # import, summary with its tags, latest, export: whatever the number of findings
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
            "task": "classification",
            "split_sizes": {"train": 100, "test": 30},
            "features": ["a", "b"],
        },
        "metrics": {
            "model": "random_forest",
            "primary_metric": "f1_macro",
            "test_score": 0.97,
            "dummy_test_score": 0.21,
        },
        "guardrails/data": {"passed": True},
        "guardrails/validation": {"passed": False},
        "deployment": {"package_dir": "/ws/runs/r/deployment"},
        "registry": {"model_name": "wine", "version": "v3"},
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
