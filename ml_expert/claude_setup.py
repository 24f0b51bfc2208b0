"""`ml-expert setup claude`: make a project ready for Claude Code and claude-flow in one step.

What it writes into the project (each merged, never clobbering what the user has there):

- `.claude/skills/<skill>/SKILL.md`: the skill that tells an agent how to drive ml-expert;
- `.mcp.json`: the `ml-expert` stdio server, started by the absolute path of this very Python
  (Claude Code fails with ENOENT when the command is not on its PATH), with the workspace pinned
  to the project through `ML_EXPERT_WORKSPACE`;
- `.claude/settings.json`: the server enabled (no "Pending approval") and an allow-list of the
  read and run tools; `approve_deployment` is left out on purpose, so a person approves;
- `.claude/agents/ml-expert-{developer,researcher,tester}.md`: sub-agents, each limited to the
  tools its role needs;
- `<workspace>/claude-flow.json`: the claude-flow CLI found (PATH `claude-flow`, `ruflo`, or
  `npx --no-install claude-flow`) and its version, which `--claude-flow-sync` then uses.

Idempotent: a second call reports every item `unchanged`. `check` only reports.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ml_expert.errors import UsageError
from ml_expert.memory.claude_flow import (
    ClaudeFlowBridge,
    ClaudeFlowCLI,
    ClaudeFlowError,
    locate_cli,
    read_recorded,
    record_cli,
)
from ml_expert.skill import SKILL_NAME, check_skill, skill_text

SERVER_NAME = "ml-expert"
AGENT_NAMES = ("ml-expert-developer", "ml-expert-researcher", "ml-expert-tester")
#: The tools a session may call without asking: reading, starting runs and predicting.
#: `approve_deployment` is absent on purpose: a deployment waiting for approval waits for a person.
ALLOWED_TOOLS = (
    "start_run",
    "get_status",
    "get_findings",
    "list_runs",
    "list_models",
    "predict",
)
WORKSPACE_DIRNAME = "ml-expert-workspace"

Action = Literal["created", "updated", "unchanged", "missing", "outdated", "found", "not found"]


class SetupItem(BaseModel):
    """One thing the set-up writes or looks for, and what it did (or, with --check, what it found)."""

    what: str = Field(description="What this item is, in words.")
    path: str | None = Field(None, description="The file written or checked.")
    action: Action = Field(
        description="created/updated/unchanged when writing; missing/outdated when checking."
    )
    detail: str | None = Field(None, description="Why, or what was found.")

    @property
    def needs_work(self) -> bool:
        return self.action in ("missing", "outdated", "not found")


class SetupReport(BaseModel):
    """What `ml-expert setup claude` did or, with --check, what is missing."""

    ok: bool = Field(description="True when nothing is missing (after writing, or when checked).")
    project: str = Field(description="The project folder.")
    workspace: str = Field(description="The workspace pinned for the MCP server and recorded runs.")
    command: list[str] = Field(description="The command Claude Code runs to start the MCP server.")
    claude_flow: ClaudeFlowCLI | None = Field(None, description="The claude-flow CLI recorded, if any.")
    items: list[SetupItem] = Field(description="Every file written or checked, with its outcome.")


def server_command() -> list[str]:
    """This ml-expert, by absolute path, so Claude Code needs nothing on its PATH.

    `sys.executable` is kept as given (not resolved): a virtualenv's python is a link whose
    target lacks the venv's site-packages."""
    return [str(Path(sys.executable).absolute()), "-m", "ml_expert", "mcp"]


def tool_names(tools: tuple[str, ...] = ALLOWED_TOOLS) -> list[str]:
    return [f"mcp__{SERVER_NAME}__{t}" for t in tools]


def agent_text(name: str) -> str:
    return resources.files("ml_expert.skill").joinpath("agents", f"{name}.md").read_text(encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); fix or remove it, then run setup again") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object; fix or remove it, then run setup again")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _file_item(what: str, path: Path, text: str, check: bool) -> SetupItem:
    """Write `text` to `path` unless it is already there; with `check`, only compare."""
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return SetupItem(what=what, path=str(path), action="unchanged")
    if check:
        return SetupItem(what=what, path=str(path), action="missing" if current is None else "outdated")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return SetupItem(what=what, path=str(path), action="created" if current is None else "updated")


def _json_item(
    what: str, path: Path, merged: dict[str, Any], current: dict[str, Any], check: bool
) -> SetupItem:
    if merged == current:
        return SetupItem(what=what, path=str(path), action="unchanged")
    existed = path.exists()
    if check:
        return SetupItem(what=what, path=str(path), action="outdated" if existed else "missing")
    _write_json(path, merged)
    return SetupItem(what=what, path=str(path), action="updated" if existed else "created")


def mcp_entry(workspace: Path) -> dict[str, Any]:
    command = server_command()
    return {
        "type": "stdio",
        "command": command[0],
        "args": command[1:],
        "env": {"ML_EXPERT_WORKSPACE": str(workspace)},
    }


def _merge_settings(current: dict[str, Any]) -> dict[str, Any]:
    """Add the allow-list and the enabled server; keep every other setting and rule the user has."""
    merged = json.loads(json.dumps(current))
    permissions = merged.setdefault("permissions", {})
    allow = list(permissions.get("allow") or [])
    allow += [t for t in tool_names() if t not in allow]
    permissions["allow"] = allow
    enabled = list(merged.get("enabledMcpjsonServers") or [])
    if SERVER_NAME not in enabled:
        enabled.append(SERVER_NAME)
    merged["enabledMcpjsonServers"] = enabled
    return merged


def setup_claude(
    project: Path,
    *,
    workspace: Path | None = None,
    check: bool = False,
    claude_flow: str | None = None,
    hooks: bool = False,
) -> SetupReport:
    """Install (or, with `check`, inspect) everything a Claude Code / claude-flow project needs."""
    root = Path(project).expanduser().absolute()
    if not root.is_dir():
        raise UsageError(f"--project {project}: no such folder")
    ws = Path(workspace).expanduser().absolute() if workspace else root / WORKSPACE_DIRNAME
    items: list[SetupItem] = []

    skill_path = root / ".claude" / "skills" / SKILL_NAME / "SKILL.md"
    items.append(_file_item("Claude Code skill", skill_path, skill_text(), check))
    if not check:
        check_skill(skill_path)

    mcp_path = root / ".mcp.json"
    mcp_current = _read_json(mcp_path)
    mcp_merged = json.loads(json.dumps(mcp_current))
    mcp_merged.setdefault("mcpServers", {})[SERVER_NAME] = mcp_entry(ws)
    items.append(
        _json_item(
            "MCP server entry (absolute command, pinned workspace)", mcp_path, mcp_merged, mcp_current, check
        )
    )

    settings_path = root / ".claude" / "settings.json"
    settings_current = _read_json(settings_path)
    items.append(
        _json_item(
            "tool allow-list (not approve_deployment) and enabled server",
            settings_path,
            _merge_settings(settings_current),
            settings_current,
            check,
        )
    )

    for name in AGENT_NAMES:
        items.append(
            _file_item(
                f"sub-agent {name}", root / ".claude" / "agents" / f"{name}.md", agent_text(name), check
            )
        )

    cli = _claude_flow_item(root, ws, items, check=check, named=claude_flow, hooks=hooks)
    return SetupReport(
        ok=not any(i.needs_work for i in items if not i.what.startswith("claude-flow")),
        project=str(root),
        workspace=str(ws),
        command=server_command(),
        claude_flow=cli,
        items=items,
    )


def _claude_flow_item(
    root: Path, ws: Path, items: list[SetupItem], *, check: bool, named: str | None, hooks: bool
) -> ClaudeFlowCLI | None:
    """Find the claude-flow CLI and record it in the workspace (optional: a missing CLI is reported)."""
    recorded = read_recorded(ws)
    if check:
        if recorded is None:
            items.append(
                SetupItem(what="claude-flow CLI", action="not found", detail="none recorded (optional)")
            )
        else:
            items.append(
                SetupItem(
                    what="claude-flow CLI",
                    path=str(ws / "claude-flow.json"),
                    action="found",
                    detail=f"{' '.join(recorded.command)} (v{recorded.version})",
                )
            )
        return recorded
    try:
        cli = locate_cli(root, named=named)
    except ClaudeFlowError as exc:
        items.append(SetupItem(what="claude-flow CLI", action="not found", detail=f"{exc} (optional)"))
        return recorded
    cli = cli.model_copy(update={"project": str(root), "hooks": hooks})
    path, changed = record_cli(ws, cli)
    if not (root / ".swarm" / "memory.db").exists():
        # claude-flow refuses every store in a project whose memory was never initialised
        try:
            ClaudeFlowBridge(cli).call("memory", "init")
            items.append(SetupItem(what="claude-flow memory", path=str(root / ".swarm"), action="created"))
        except ClaudeFlowError as exc:
            items.append(SetupItem(what="claude-flow memory", action="not found", detail=str(exc)))
    else:
        items.append(SetupItem(what="claude-flow memory", path=str(root / ".swarm"), action="unchanged"))
    items.append(
        SetupItem(
            what="claude-flow CLI",
            path=str(path),
            action="unchanged" if not changed else ("updated" if recorded else "created"),
            detail=f"{' '.join(cli.command)} (v{cli.version}, {cli.source})",
        )
    )
    return cli
