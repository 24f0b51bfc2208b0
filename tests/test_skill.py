"""The packaged Claude Code skill and `ml-expert install-skill`.

Claude Code finds a skill only at `.claude/skills/<name>/SKILL.md`, reads `name` and
`description` from its front matter, and requires `name` to equal the folder name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert.skill import SKILL_NAME, check_skill, front_matter, skill_text

CLI = [sys.executable, "-m", "ml_expert"]
MCP_TOOLS = (
    "start_run",
    "get_status",
    "get_findings",
    "list_runs",
    "list_models",
    "predict",
    "approve_deployment",
)


def _install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "install-skill", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_install_into_a_project_passes_the_naming_rules(tmp_path: Path) -> None:
    proc = _install("--project", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path = Path(json.loads(proc.stdout)["path"])
    assert path == tmp_path / ".claude" / "skills" / SKILL_NAME / "SKILL.md"
    fields = check_skill(path)
    assert fields["name"] == path.parent.name == SKILL_NAME
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", fields["name"]) and len(fields["name"]) <= 64
    assert fields["description"].startswith("Use when") and len(fields["description"]) <= 1024
    assert set(fields) == {"name", "description"}
    body = path.read_text()
    for tool in MCP_TOOLS:
        assert f"mcp__ml-expert__{tool}" in body
    for key in ("data-analysis", "model-selection", "training", "metrics", "deployment", "guardrails/"):
        assert f"`{key}" in body
    for role in ("ml-developer", "researcher", "tester"):
        assert role in body
    assert "ml-expert status RUN_ID --json" in body and "--detach" in body
    assert "claude-flow memory retrieve" in body

    # Idempotent; a different file is kept unless --force.
    assert _install("--project", str(tmp_path)).returncode == 0
    path.write_text(path.read_text() + "\nlocal edit\n")
    refused = _install("--project", str(tmp_path))
    assert refused.returncode == 2 and "--force" in json.loads(refused.stdout)["error"]
    assert _install("--project", str(tmp_path), "--force").returncode == 0
    assert path.read_text() == skill_text()


def test_install_for_the_user_and_usage_errors(tmp_path: Path) -> None:
    proc = _install("--user", env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["path"]) == tmp_path / ".claude" / "skills" / SKILL_NAME / "SKILL.md"
    assert _install().returncode == 2
    assert _install("--user", "--project", str(tmp_path)).returncode == 2
    assert _install("--project", str(tmp_path / "missing")).returncode == 2


def test_the_rules_reject_a_mismatched_name(tmp_path: Path) -> None:
    folder = tmp_path / ".claude" / "skills" / "other-name"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(skill_text())
    with pytest.raises(ValueError, match="differs from its folder"):
        check_skill(folder / "SKILL.md")
    with pytest.raises(ValueError, match="front matter"):
        front_matter("no front matter")


def test_skill_is_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"skill/SKILL.md"' in pyproject
    assert skill_text().startswith("---\nname: " + SKILL_NAME + "\n")
