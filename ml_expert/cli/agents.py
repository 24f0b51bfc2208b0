"""`mcp` and `install-skill`: what agent runtimes (Claude Code, claude-flow) use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, WorkspaceOpt, emit_json, handles_errors
from ml_expert.errors import UsageError


@handles_errors()
def install_skill(
    project: Annotated[
        Path | None, typer.Option("--project", help="Writes DIR/.claude/skills/<name>/SKILL.md.")
    ] = None,
    user: Annotated[bool, typer.Option("--user", help="Write ~/.claude/skills/<name>/SKILL.md.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a SKILL.md that differs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Install the Claude Code skill that tells agents how to drive ml-expert."""
    from ml_expert.skill import install

    if user == (project is not None):
        raise UsageError("give exactly one of --project DIR or --user")
    path = install(project=project, user=user, force=force)
    if as_json:
        emit_json({"ok": True, "path": str(path)})
    else:
        typer.echo(str(path))


@handles_errors(json_errors=False)
def mcp(
    workspace: WorkspaceOpt = None,
    transport: Annotated[str, typer.Option(help="stdio, or streamable-http.")] = "stdio",
    port: Annotated[int, typer.Option(help="Port for streamable-http (bound to 127.0.0.1).")] = 8765,
) -> None:
    """Serve the MCP tools (start_run, get_status, get_findings, ...) to an agent runtime."""
    from ml_expert.mcp_server import serve

    if transport not in ("stdio", "streamable-http"):
        raise UsageError("--transport is stdio or streamable-http")
    serve(workspace, transport=transport, port=port)


def register(app: typer.Typer) -> None:
    app.command("install-skill")(install_skill)
    app.command()(mcp)
