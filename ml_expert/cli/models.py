"""`models list | show | promote | rollback`: the registry's released versions and aliases."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, WorkspaceOpt, emit_json, handles_errors, stderr_console

app = typer.Typer(
    help="Released model versions: list, show, promote, rollback (aliases production/previous).",
    no_args_is_help=True,
)


def _registry(workspace: str | None):
    from ml_expert.registry import Registry
    from ml_expert.workspace import workspace_path

    return Registry(workspace_path(workspace))


@app.command("list")
@handles_errors()
def models_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered version, newest last, with its aliases and test score."""
    registry = _registry(workspace)
    versions = registry.versions()
    if as_json:
        emit_json({"ok": True, "aliases": registry.aliases(), "versions": versions})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models in {registry.root}")
    for column in ("version", "aliases", "model", "test score", "run", "registered"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v["version"],
            ", ".join(v["aliases"]),
            str(v.get("model")),
            f"{v.get('primary_metric')} {v.get('test_score'):.4f}"
            if v.get("test_score") is not None
            else "-",
            str(v.get("run_id")),
            str(v.get("registered")),
        )
    Console().print(table)


@app.command("show")
@handles_errors(json_errors=True)
def models_show(
    name: Annotated[str, typer.Argument(help="Version (v3) or alias (production, previous).")] = "production",
    workspace: WorkspaceOpt = None,
    audit: Annotated[bool, typer.Option("--audit", help="Also print the audit log.")] = False,
) -> None:
    """One version's metadata as JSON (metrics, data fingerprint, run, who registered it)."""
    registry = _registry(workspace)
    info = registry.show(name)
    if audit:
        info["audit"] = registry.audit()
    emit_json(info)


@app.command("promote")
@handles_errors()
def models_promote(
    version: Annotated[str, typer.Argument(help="Version to make production (v3).")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION production; the current production becomes previous. Audited."""
    _report_aliases(_registry(workspace).promote(version), as_json)


@app.command("rollback")
@handles_errors()
def models_rollback(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Point production back at previous (the two swap, so a second rollback undoes it). Audited."""
    _report_aliases(_registry(workspace).rollback(), as_json)


def _report_aliases(aliases: dict[str, str], as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, "aliases": aliases})
    else:
        stderr_console().print(", ".join(f"{k} -> {v}" for k, v in aliases.items()))
