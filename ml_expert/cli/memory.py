"""`memory list | get`: read the findings agents shared under ml-expert/*."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, MemoryOpt, WorkspaceOpt, emit_json, handles_errors, open_store
from ml_expert.errors import UsageError

app = typer.Typer(help="Read the findings agents shared under ml-expert/*.", no_args_is_help=True)


@app.command("list")
@handles_errors()
def memory_list(
    run_id: Annotated[str | None, typer.Argument(help="Only this run's keys.")] = None,
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the keys under ml-expert/*."""
    store = open_store(memory, workspace)
    keys = store.keys(run_id)
    if as_json:
        emit_json({"ok": True, "backend": store.backend, "keys": keys})
    else:
        for key in keys:
            typer.echo(key)


@app.command("get")
@handles_errors(json_errors=False)
def memory_get(
    key: Annotated[str, typer.Argument(help="Full key (ml-expert/<run_id>/<key>) or <run_id>/<key>.")],
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Print one finding as JSON."""
    store = open_store(memory, workspace)
    full = key if key.startswith("ml-expert/") else f"ml-expert/{key}"
    value = store.get_full(full)
    if value is None:
        raise UsageError(f"no value under {full}; `ml-expert memory list` shows the keys")
    emit_json(value if isinstance(value, dict) else {"value": value})
