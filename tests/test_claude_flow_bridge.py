"""The claude-flow memory bridge against a fake `claude-flow` executable on PATH.

The fake answers like claude-flow v3's CLI (`memory store` prints info lines and a table;
`memory retrieve --format json` prints the entry as JSON with the value under `content`; a
missing key is a warning and exit 1), keeps its entries in a JSON file and records every call.
It can be told to corrupt one key on store, so the read-back differs.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ml_expert import run
from ml_expert.memory.claude_flow import ClaudeFlowBridge, ClaudeFlowError, mirror_finding

FAKE = r"""#!{python}
import json, os, sys, time
db_path, log_path = os.environ["FAKE_CF_DB"], os.environ["FAKE_CF_LOG"]
argv = sys.argv[1:]
with open(log_path, "a") as fh:
    fh.write(json.dumps(argv) + "\n")

def flag(short, long, default=None):
    for name in (short, long):
        if name and name in argv:
            return argv[argv.index(name) + 1]
    return default

db = json.load(open(db_path)) if os.path.exists(db_path) else {{}}
if argv[:2] == ["memory", "store"]:
    key, value, ns = flag("-k", "--key"), flag(None, "--value"), flag("-n", "--namespace", "default")
    if not key or value is None:
        print("[ERROR] Key is required. Use --key or -k"); sys.exit(1)
    if os.environ.get("FAKE_CF_CORRUPT") and os.environ["FAKE_CF_CORRUPT"] in key:
        value = value.replace("}}", ', "tampered": true}}', 1)
    db[ns + "/" + key] = {{"key": key, "namespace": ns, "content": value, "accessCount": 0, "tags": [],
                          "hasEmbedding": False, "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    json.dump(db, open(db_path, "w"))
    print(f"[INFO] Storing in {{ns}}/{{key}}...")
    print("+-----------+------+\n| Property  | Value|\n+-----------+------+")
    print("[OK] Data stored successfully")
elif argv[:2] == ["memory", "retrieve"]:
    key, ns = flag("-k", "--key"), flag("-n", "--namespace", "default")
    entry = db.get(ns + "/" + key)
    if entry is None:
        print(f"[WARN] Key not found: {{key}}"); sys.exit(1)
    if flag(None, "--format") == "json":
        print(json.dumps({{**entry, "id": "entry_1", "updatedAt": entry["createdAt"]}}, indent=2))
    else:
        print("Memory Entry\n" + entry["content"])
else:
    print("unknown command", argv, file=sys.stderr); sys.exit(2)
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
    monkeypatch.delenv("ML_EXPERT_CLAUDE_FLOW_BIN", raising=False)
    monkeypatch.delenv("ML_EXPERT_CLAUDE_FLOW_SYNC", raising=False)
    return paths


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_store_is_read_back(fake_claude_flow: dict[str, Path]) -> None:
    bridge = ClaudeFlowBridge()
    assert bridge.command == [str(fake_claude_flow["exe"])]  # found on PATH
    value = {"accuracy": 0.93, "classes": ["a", "b"], "nested": {"n": 1}}
    bridge.store("run-1/metrics", value)
    assert bridge.retrieve("run-1/metrics") == value
    store, retrieve = _calls(fake_claude_flow["log"])[:2]
    assert store[:4] == ["memory", "store", "-k", "run-1/metrics"]
    assert json.loads(store[store.index("--value") + 1]) == value
    assert store[store.index("-n") + 1] == "ml-expert"
    assert retrieve == ["memory", "retrieve", "-k", "run-1/metrics", "-n", "ml-expert", "--format", "json"]


def test_failed_read_back_and_missing_cli_raise(fake_claude_flow: dict[str, Path], monkeypatch) -> None:
    monkeypatch.setenv("FAKE_CF_CORRUPT", "metrics")
    with pytest.raises(ClaudeFlowError, match="read-back .* differs"):
        ClaudeFlowBridge().store("run-1/metrics", {"accuracy": 0.9})
    with pytest.raises(ClaudeFlowError, match="exited 1: .*Key not found"):
        ClaudeFlowBridge().retrieve("run-1/never-stored")
    with pytest.raises(ClaudeFlowError, match="not found on PATH"):
        ClaudeFlowBridge(command=[]).store("k", {})
    monkeypatch.setenv("ML_EXPERT_CLAUDE_FLOW_BIN", str(fake_claude_flow["exe"].parent / "missing-cf"))
    with pytest.raises(ClaudeFlowError, match="cannot run"):
        ClaudeFlowBridge().store("k", {})


def test_mirror_is_opt_in(tmp_path: Path, fake_claude_flow: dict[str, Path]) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"config": {}}))
    assert mirror_finding(run_dir, "r", "metrics", {"a": 1}) is False
    assert _calls(fake_claude_flow["log"]) == []


def test_run_syncs_every_finding_and_a_bad_read_back_is_only_a_warning(
    workspace: Path, fake_claude_flow: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CF_CORRUPT", "/metrics")
    result = run("iris", train_dnn=False, budget=60, seed=6, workspace=workspace, claude_flow_sync=True)
    assert result.status == "finished"  # the bridge never fails a run
    record = json.loads((Path(result.run_dir) / "run.json").read_text())
    bad = f"{result.run_id}/metrics"
    assert list(record["claude_flow"]["failed"]) == [bad]
    assert any(bad in w and "read-back" in w for w in record["warnings"])

    findings = {
        p.name[:-5].replace("__", "/") for p in (Path(result.run_dir) / "findings").glob("[!_]*.json")
    }
    synced = set(record["claude_flow"]["synced"])
    assert synced == {f"{result.run_id}/{k}" for k in findings - {"metrics"}}
    db = json.loads(fake_claude_flow["db"].read_text())
    stored = json.loads(db[f"ml-expert/{result.run_id}/data-analysis"]["content"])
    on_disk = json.loads((Path(result.run_dir) / "findings" / "data-analysis.json").read_text())
    assert stored == on_disk
    keys_stored = {c[3] for c in _calls(fake_claude_flow["log"]) if c[:2] == ["memory", "store"]}
    assert keys_stored == {f"{result.run_id}/{k}" for k in findings}


def test_env_variable_enables_sync_through_the_cli(
    workspace: Path, fake_claude_flow: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.setenv("ML_EXPERT_CLAUDE_FLOW_SYNC", "1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_expert",
            "run",
            "iris",
            "--no-dnn",
            "--budget",
            "60",
            "--json",
            "--workspace",
            str(workspace),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    record = json.loads((workspace / "runs" / run_id / "run.json").read_text())
    assert record["claude_flow"]["failed"] == {} and f"{run_id}/status" in record["claude_flow"]["synced"]
    assert "warnings" not in record
