"""`memory list | get | sync`: read the findings agents shared under ml-expert/*, replay missing ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, MemoryOpt, WorkspaceOpt, emit_json, handles_errors, open_store
from ml_expert.errors import UsageError

app = typer.Typer(help="Read the findings agents shared under ml-expert/*.", no_args_is_help=True)


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """A malformed key or run id (`../../x`) and an unreachable store are the user's to fix: one
    message and exit 2, never a traceback."""
    from ml_expert.memory import MemoryUnavailable

    try:
        yield
    except ValueError as exc:  # the store refuses a malformed key or run id
        raise UsageError(f"{what!r} is not a memory key: {exc}") from None
    except MemoryUnavailable as exc:
        raise UsageError(str(exc)) from None


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
    with reading(run_id or "ml-expert/*"):
        keys = store.keys(run_id)
    if as_json:
        emit_json({"ok": True, "backend": store.backend, "keys": keys})
    else:
        for key in keys:
            typer.echo(key)


@app.command("get")
@handles_errors()
def memory_get(
    key: Annotated[str, typer.Argument(help="Full key (ml-expert/<run_id>/<key>) or <run_id>/<key>.")],
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print one finding as JSON (with --json an error is a JSON object on stdout too)."""
    store = open_store(memory, workspace)
    full = key if key.startswith("ml-expert/") else f"ml-expert/{key}"
    with reading(key):
        value = store.get_full(full)
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
    from ml_expert.config import RunConfig
    from ml_expert.memory import FindingsRecorder, MemoryUnavailable
    from ml_expert.runs import RunFile
    from ml_expert.workspace import run_dir, workspace_path

    path = run_dir(workspace_path(workspace), run_id)
    if memory is None:  # the run's own store, from its options as RunConfig validated them
        run = RunFile(path)
        try:
            memory = RunConfig.build(**run.read().config).memory
        except UsageError as exc:  # a key RunConfig does not know (misspelt, or hand-edited)
            raise UsageError(f"{run.path}: its config is not a run's options: {exc.message}") from None
    store = open_store(memory, workspace)
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
