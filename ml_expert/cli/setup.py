"""`ml-expert setup claude`: the one command that readies a project for Claude Code and claude-flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, emit_json, handles_errors

app = typer.Typer(
    help="Set a project up for an agent runtime (claude: Claude Code and claude-flow).", no_args_is_help=True
)


@app.command("claude")
@handles_errors()
def setup_claude_command(
    project: Annotated[
        Path, typer.Option("--project", help="Project folder (default: the current folder).")
    ] = Path("."),
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace the MCP server is pinned to (default: PROJECT/ml-expert-workspace).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; report what is missing (exit 1 when anything is).")
    ] = False,
    claude_flow: Annotated[
        str | None,
        typer.Option(
            "--claude-flow", help="The claude-flow command to record (default: PATH claude-flow, ruflo, npx)."
        ),
    ] = None,
    hooks: Annotated[
        bool,
        typer.Option(
            "--hooks", help="Runs also call claude-flow's hooks pre-task/post-task (role, success, score)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Install the skill, the MCP server entry, the tool allow-list, the sub-agents; record claude-flow."""
    from ml_expert.claude_setup import setup_claude

    report = setup_claude(project, workspace=workspace, check=check, claude_flow=claude_flow, hooks=hooks)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        verb = "checked" if check else "set up"
        typer.echo(f"ml-expert {verb} {report.project} for Claude Code (workspace {report.workspace})")
        for item in report.items:
            where = f" {item.path}" if item.path else ""
            detail = f" - {item.detail}" if item.detail else ""
            typer.echo(f"  {item.action:>9}  {item.what}{where}{detail}")
        if check and not report.ok:
            typer.echo("missing or outdated items: run `ml-expert setup claude` to write them", err=True)
    if not report.ok:
        raise typer.Exit(1)
