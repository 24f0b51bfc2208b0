"""`ml-expert setup claude`: the files it writes, that a second call changes nothing, `--check`,
that the user's own settings survive, and that a run's sync uses the CLI it recorded.

The claude-flow CLI here is the fake of tests/claude_flow_fake.py; tests/test_claude_flow_real.py
does the same with the real one from npm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import claude_flow_fake

from ml_expert.claude_setup import AGENT_NAMES, ALLOWED_TOOLS
from ml_expert.skill import SKILL_NAME, check_skill, front_matter

fake_claude_flow = claude_flow_fake.fake_claude_flow  # the fixture
CLI = [sys.executable, "-m", "ml_expert"]


def setup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "setup", "claude", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_setup_writes_everything_once_and_check_reports_what_is_missing(
    tmp_path: Path, fake_claude_flow: dict[str, Path]
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".claude").mkdir()
    user_settings = {"permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(.env)"]}, "model": "opus"}
    (project / ".claude" / "settings.json").write_text(json.dumps(user_settings))
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))

    check = setup("--project", str(project), "--check")
    assert check.returncode == 1 and json.loads(check.stdout)["ok"] is False
    assert not (project / ".claude" / "agents").exists()  # --check writes nothing

    first = setup("--project", str(project))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    actions = {item["what"]: item["action"] for item in report["items"]}
    assert set(actions.values()) <= {"created", "updated"}, actions

    server = json.loads((project / ".mcp.json").read_text())["mcpServers"]
    assert server["other"] == {"command": "x"}  # the user's server is kept
    entry = server["ml-expert"]
    assert Path(entry["command"]).is_absolute() and entry["args"] == ["-m", "ml_expert", "mcp"]
    assert entry["env"]["ML_EXPERT_WORKSPACE"] == str(project / "ml-expert-workspace")
    probe = subprocess.run(
        [entry["command"], "-c", "import ml_expert; print(ml_expert.__file__)"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, "the recorded command must run this ml-expert without PATH"

    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert settings["model"] == "opus" and settings["permissions"]["deny"] == ["Read(.env)"]
    allow = settings["permissions"]["allow"]
    assert allow[0] == "Bash(ls:*)" and {f"mcp__ml-expert__{t}" for t in ALLOWED_TOOLS} <= set(allow)
    assert "mcp__ml-expert__approve_deployment" not in allow
    assert settings["enabledMcpjsonServers"] == ["ml-expert"]

    check_skill(project / ".claude" / "skills" / SKILL_NAME / "SKILL.md")
    for name in AGENT_NAMES:
        text = (project / ".claude" / "agents" / f"{name}.md").read_text()
        fields = front_matter(text)
        assert fields["name"] == name and fields["description"]
        tools = [t.strip() for t in fields["tools"].split(",")]
        assert "mcp__ml-expert__get_findings" in tools and "mcp__ml-expert__approve_deployment" not in tools
        assert ("mcp__ml-expert__start_run" in tools) == (name == "ml-expert-developer")
        assert "summary" in text  # told which finding keys to read

    recorded = json.loads((project / "ml-expert-workspace" / "claude-flow.json").read_text())
    assert recorded["command"] == [str(fake_claude_flow["exe"])] and recorded["version"] == "3.43.0"
    assert recorded["project"] == str(project)
    assert (project / ".swarm" / "memory.db").exists()  # `memory init` ran in the project

    again = setup("--project", str(project))
    assert {i["action"] for i in json.loads(again.stdout)["items"]} == {"unchanged"}
    assert setup("--project", str(project), "--check").returncode == 0


def test_a_run_syncs_through_the_recorded_cli_from_the_project_with_hooks(
    tmp_path: Path, fake_claude_flow: dict[str, Path], monkeypatch
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    assert setup("--project", str(project), "--hooks").returncode == 0
    # The CLI leaves PATH: the run must use the recorded one, and run it in the project.
    fake_dir = str(fake_claude_flow["exe"].parent)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != fake_dir)
    )
    from ml_expert import run

    result = run(
        "iris",
        train_dnn=False,
        budget=20,
        seed=4,
        workspace=project / "ml-expert-workspace",
        claude_flow_sync=True,
    )
    assert result.claude_flow is not None and result.claude_flow.ok, result.claude_flow
    cwds = {json.loads(line)["cwd"] for line in fake_claude_flow["log"].read_text().splitlines()}
    assert cwds == {str(project)}
    calls = claude_flow_fake.calls(fake_claude_flow["log"])
    pre = next(c for c in calls if c[:2] == ["hooks", "pre-task"])
    post = next(c for c in calls if c[:2] == ["hooks", "post-task"])
    assert pre[pre.index("-i") + 1] == result.run_id and "iris" in pre[pre.index("-d") + 1]
    assert (
        post[post.index("--success") + 1] == "true" and post[post.index("--agent-role") + 1] == "ml-developer"
    )
    assert 0.5 < float(post[post.index("-q") + 1]) <= 1.0  # the test accuracy as the quality score


def test_bad_project_and_broken_settings_are_usage_errors(tmp_path: Path) -> None:
    missing = setup("--project", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such folder" in json.loads(missing.stdout)["error"]
    (tmp_path / ".mcp.json").write_text("{not json")
    broken = setup("--project", str(tmp_path))
    assert broken.returncode == 2 and ".mcp.json is not valid JSON" in json.loads(broken.stdout)["error"]
