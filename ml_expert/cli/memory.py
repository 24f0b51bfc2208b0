"""`memory list | get | sync`: read the findings agents shared under ml-expert/*, replay missing ones."""

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
    try:
        value = store.get_full(full)
    except ValueError as exc:  # a malformed key (../../x): the store refuses it
        raise UsageError(f"{key!r} is not a memory key: {exc}") from None
    if value is None:
        raise UsageError(f"no value under {full}; `ml-expert memory list` shows the keys")
    emit_json(value if isinstance(value, dict) else {"value": value})


@app.command("sync")
@handles_errors()
def memory_sync(
    run_id: Annotated[str, typer.Argument(help="The run whose findings to replay into memory.")],
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a run's findings (kept as files) into the memory store, e.g. after Redis was down."""
    from ml_expert.memory import FindingsRecorder, MemoryUnavailable
    from ml_expert.workspace import read_run, run_dir, workspace_path

    path = run_dir(workspace_path(workspace), run_id)
    record = read_run(path)
    store = open_store(memory or (record.get("config") or {}).get("memory"), workspace)
    recorder = FindingsRecorder(store, path, run_id)
    missing = recorder.unsynced()
    try:
        count = recorder.sync()
    except MemoryUnavailable as exc:
        raise UsageError(f"memory is still unavailable: {exc}") from exc
    payload = {
        "ok": True,
        "run_id": run_id,
        "backend": store.backend,
        "replayed": count,
        "were_missing": missing,
    }
    if as_json:
        emit_json(payload)
    else:
        typer.echo(
            f"replayed {count} findings of {run_id} into {store.backend} ({len(missing)} were missing)"
        )
