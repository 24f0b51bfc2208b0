"""The real claude-flow CLI (the pinned claude-flow@3.43.0 from npm), end to end.

scripts/ensure-claude-flow.sh installs it once into a cache folder outside the clone
(${XDG_CACHE_HOME:-~/.cache}/ml-expert/claude-flow-3.43.0; about 5 minutes of CPU the first time,
reused after). Without node/npm, or when the install fails, this test FAILS with the script's
message: it never skips. Then `ml-expert setup claude` into a scratch project, a small synced run,
and `latest`, `summary` and `metrics` read back with claude-flow's own `memory retrieve`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert.claude_setup import AGENT_NAMES

pytestmark = pytest.mark.long_running  # npm install on a cold cache: minutes; queued first

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ml_expert"]


@pytest.fixture(scope="module")
def claude_flow_bin() -> Path:
    proc = subprocess.run(
        [str(REPO / "scripts" / "ensure-claude-flow.sh")], capture_output=True, text=True, timeout=1500
    )
    if proc.returncode != 0:
        pytest.fail(f"could not install the pinned claude-flow CLI:\n{proc.stderr[-2000:]}", pytrace=False)
    return Path(proc.stdout.strip().splitlines()[-1])


def _retrieve(cf: Path, project: Path, key: str, *extra: str) -> dict:
    proc = subprocess.run(
        [str(cf), "memory", "retrieve", "-k", key, "-n", "ml-expert", "--format", "json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        env={**os.environ, "RUFLO_DAEMON_AUTOSTART": "0"},
    )
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-1000:]
    text = proc.stdout
    return json.loads(text[text.find("{") :])  # a [WARN] line may come first


def test_setup_then_a_synced_run_read_back_by_claude_flow(claude_flow_bin: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "PATH": f"{claude_flow_bin.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("ML_EXPERT_CLAUDE_FLOW_BIN", None)
    setup = subprocess.run(
        [*CLI, "setup", "claude", "--project", str(project), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=project,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    report = json.loads(setup.stdout)
    assert report["claude_flow"]["version"] == "3.43.0", report
    assert report["claude_flow"]["command"] == [str(claude_flow_bin)]
    for path in (
        ".mcp.json",
        ".claude/settings.json",
        *(f".claude/agents/{name}.md" for name in AGENT_NAMES),
        ".swarm/memory.db",  # `memory init`, which claude-flow needs before any store
        "ml-expert-workspace/claude-flow.json",
    ):
        assert (project / path).exists(), path
    workspace = project / "ml-expert-workspace"
    assert json.loads((project / ".mcp.json").read_text())["mcpServers"]["ml-expert"]["env"] == {
        "ML_EXPERT_WORKSPACE": str(workspace)
    }

    # A run from elsewhere, with claude-flow no longer on PATH: the recorded CLI is used, in the project.
    run = subprocess.run(
        [*CLI, "run", "iris", "--no-dnn", "--budget", "20", "--json", "--claude-flow-sync"]
        + ["--workspace", str(workspace), "--memory", "embedded"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    sync = out["claude_flow"]
    findings = {p.name for p in (workspace / "runs" / out["run_id"] / "findings").glob("[!_]*.json")}
    assert sync["ok"] is True and sync["failed"] == 0, sync
    assert sync["stored"] == len(findings) + 1  # every finding (summary included) and `latest`

    latest = _retrieve(claude_flow_bin, project, "latest")
    assert latest["content"] == out["run_id"]
    summary = _retrieve(claude_flow_bin, project, f"{out['run_id']}/summary")
    assert {f"run:{out['run_id']}", "phase:finish", "agent:ml-expert"} <= set(summary["tags"])
    text = json.loads(summary["content"])["text"]
    # claude-flow 3.43 keeps two stores (its issue #3196): `memory import` writes the AgentDB one,
    # which its MCP tools read; the CLI's `memory retrieve` reads it with --path.
    agentdb = str(project / ".swarm" / "agentdb-memory.db")
    metrics_key = f"{out['run_id']}/metrics"
    metrics = json.loads(_retrieve(claude_flow_bin, project, metrics_key, "--path", agentdb)["content"])
    mcp = subprocess.run(
        [str(claude_flow_bin), "mcp", "exec", "-t", "memory_retrieve", "-p"]
        + [json.dumps({"key": metrics_key, "namespace": "ml-expert"})],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        env={**os.environ, "RUFLO_DAEMON_AUTOSTART": "0"},
    )
    assert mcp.returncode == 0 and '"found": true' in mcp.stdout, mcp.stdout[-1500:]
    on_disk = json.loads((workspace / "runs" / out["run_id"] / "findings" / "metrics.json").read_text())
    assert metrics == on_disk
    assert "iris" in text and metrics["model"] in text and f"{metrics['test_score']:.4f}" in text
    assert "dummy" in text and "deployment" in text

    status = subprocess.run(
        [*CLI, "status", out["run_id"], "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["claude_flow"]["stored"] == sync["stored"]
