"""`ml-expert`: the command line. Thin: parses, calls the public API, prints.

Heavy libraries (TensorFlow, Keras, scikit-learn) are imported only inside the commands that
train or predict, so `--help`, `status` and `memory` start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ml_expert.errors import EXIT_DATA, EXIT_GATE, EXIT_USAGE, MLExpertError, UsageError

EXIT_CODES = """Exit codes: 0 success, 2 usage error, 3 data error, 4 training failure, 5 a gate refused."""

app = typer.Typer(
    name="ml-expert",
    help="Dataset in, validated and deployable model out.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
memory_app = typer.Typer(help="Read the findings agents shared under ml-expert/*.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace", "-w", help="Workspace folder (default: $ML_EXPERT_WORKSPACE or ./ml-expert-workspace)."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout; logs go to stderr.")
]
MemoryOpt = Annotated[
    str | None,
    typer.Option("--memory", help="redis://host:port/db, or 'embedded'. Default: $REDIS_URL, else embedded."),
]


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def _fail(exc: MLExpertError, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        _emit_json({"ok": False, "error": exc.message, "error_kind": exc.kind, **(extra or {})})
    else:
        _stderr_console().print(f"[bold red]error[/] ({exc.kind}): {exc.message}", highlight=False)
    raise typer.Exit(exc.exit_code)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Route fd 1 to stderr so nothing a library prints can corrupt the one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _parse_min_metric(values: list[str] | None) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for item in values or []:
        name, sep, number = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            parsed[name.strip()] = float(number)
        except ValueError:
            raise UsageError(f"--min-metric expects NAME=NUMBER, got {item!r}") from None
    return parsed


@app.command()
def run(
    data: Annotated[
        str | None, typer.Argument(help="CSV/Parquet/.npz file, image folder or demo name. Default: demo.")
    ] = None,
    target: Annotated[str, typer.Option("--target", "-t", help="Label column.")] = "target",
    seed: Annotated[int, typer.Option(help="Random seed (recorded in the manifest).")] = 42,
    budget: Annotated[float, typer.Option(help="Seconds for model selection plus training.")] = 120.0,
    min_metric: Annotated[
        list[str] | None,
        typer.Option("--min-metric", help="Validation gate threshold NAME=VALUE (repeatable)."),
    ] = None,
    max_overfit_gap: Annotated[
        float | None, typer.Option(help="Largest allowed train-validation gap.")
    ] = None,
    no_dnn: Annotated[bool, typer.Option("--no-dnn", help="Do not train the Keras network.")] = False,
    modality: Annotated[str, typer.Option(help="auto, tabular or image (pixel columns).")] = "auto",
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start the run in its own process, print its run id, return.")
    ] = False,
    require_approval: Annotated[
        bool,
        typer.Option("--require-approval", help="Stop before deployment until `ml-expert approve RUN_ID`."),
    ] = False,
    claude_flow_sync: Annotated[
        bool,
        typer.Option(
            "--claude-flow-sync",
            help="Also store each finding via the claude-flow CLI (namespace ml-expert) and read it back.",
        ),
    ] = False,
    run_id_opt: Annotated[str | None, typer.Option("--run-id", hidden=True)] = None,
) -> None:
    """Run the five phases on DATA and ship a validated model."""
    from ml_expert.workspace import check_run_id, new_run_id, workspace_path

    ws = workspace_path(workspace)
    try:
        run_id = check_run_id(run_id_opt) if run_id_opt else new_run_id()
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    extra = {"run_id": run_id, "run_dir": str(ws / "runs" / run_id)}
    claude_flow_sync = claude_flow_sync or os.environ.get("ML_EXPERT_CLAUDE_FLOW_SYNC", "") in ("1", "true")
    try:
        thresholds = _parse_min_metric(min_metric)
        if budget <= 0:
            raise UsageError("--budget must be positive")
        if detach:
            _start_detached(
                data,
                target,
                seed,
                budget,
                min_metric,
                max_overfit_gap,
                no_dnn,
                modality,
                memory,
                require_approval,
                claude_flow_sync,
                ws,
                run_id,
                as_json,
            )
            return
        from ml_expert.runner import run as run_pipeline

        kwargs = dict(
            seed=seed,
            budget=budget,
            workspace=ws,
            memory=memory,
            min_metric=thresholds,
            max_overfit_gap=max_overfit_gap,
            train_dnn=not no_dnn,
            modality=modality,
            run_id=run_id,
            require_approval=require_approval,
            claude_flow_sync=claude_flow_sync,
        )
        if as_json:
            with _stdout_to_stderr():
                result = run_pipeline(data, target, **kwargs)
        else:
            from ml_expert.progress import RichProgress

            with RichProgress(_stderr_console()) as progress:
                result = run_pipeline(data, target, on_event=progress, **kwargs)
    except MLExpertError as exc:
        _fail(exc, as_json, extra)
        return
    if as_json:
        _emit_json(result.model_dump())
    else:
        _print_summary(result)
    if result.status == "refused":
        raise typer.Exit(EXIT_GATE)


def _start_detached(
    data,
    target,
    seed,
    budget,
    min_metric,
    max_overfit_gap,
    no_dnn,
    modality,
    memory,
    require_approval,
    claude_flow_sync,
    ws,
    run_id,
    as_json,
) -> None:
    """Re-issue the same `run` in a detached process (flags validated here, before it starts)."""
    from ml_expert.detached import start_detached

    args: list[str] = [data] if data else []
    args += ["--target", target, "--seed", str(seed), "--budget", str(budget), "--modality", modality]
    for item in min_metric or []:
        args += ["--min-metric", item]
    if max_overfit_gap is not None:
        args += ["--max-overfit-gap", str(max_overfit_gap)]
    if no_dnn:
        args.append("--no-dnn")
    if memory:
        args += ["--memory", memory]
    if require_approval:
        args.append("--require-approval")
    if claude_flow_sync:
        args.append("--claude-flow-sync")
    started = start_detached(args, ws, run_id)
    if as_json:
        _emit_json(started)
    else:
        _stderr_console().print(
            f"started run [bold]{run_id}[/] (pid {started['pid']}); poll with `ml-expert status {run_id}`, "
            f"log: {started['log']}",
            highlight=False,
        )
        typer.echo(run_id)


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ml-expert run {result.run_id}: {result.status}")
    table.add_column("item")
    table.add_column("value")
    table.add_row("task", str(result.task))
    table.add_row("chosen model", str(result.chosen_model))
    for name, value in result.metrics.items():
        if isinstance(value, int | float):
            table.add_row(f"test {name}", f"{value:.4f}")
    table.add_row("gates", ", ".join(f"{k}: {'passed' if v else 'REFUSED'}" for k, v in result.gates.items()))
    for name in ("deployment", "evaluation_report", "metrics", "training_curves"):
        if name in result.artifacts:
            table.add_row(name, result.artifacts[name])
    if result.reason:
        table.add_row("reason", result.reason)
    Console().print(table)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id (default: the newest run).")] = "latest",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Phase, status and gate verdicts of a run (a run whose process died shows as failed)."""
    from ml_expert.detached import run_summary

    try:
        summary = run_summary(workspace, run_id)
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _emit_json(summary)
        return
    from rich.console import Console

    console = Console()
    for key, value in summary.items():
        if value not in (None, [], {}):
            console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command("runs")
def runs_command(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs of the workspace, newest first."""
    from ml_expert.detached import runs_table
    from ml_expert.workspace import workspace_path

    rows = runs_table(workspace)
    if as_json:
        _emit_json({"ok": True, "workspace": str(workspace_path(workspace)), "runs": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {workspace_path(workspace)}")
    for column in ("run_id", "status", "phase", "data", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in ("run_id", "status", "phase", "data", "created")))
    Console().print(table)


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="A run waiting with status awaiting_approval.")],
    reject: Annotated[bool, typer.Option("--reject", help="Refuse the deployment instead.")] = False,
    note: Annotated[str | None, typer.Option(help="Why (kept in run.json under approval).")] = None,
    by: Annotated[str, typer.Option(help="Who decides (kept in run.json).")] = "cli",
    detach: Annotated[bool, typer.Option("--detach", help="Resume in its own process and return.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve (or --reject) the deployment of a run started with --require-approval."""
    try:
        if detach:
            from ml_expert.detached import approve_detached

            started = approve_detached(run_id, workspace, approved=not reject, note=note, by=by)
            if as_json:
                _emit_json(started)
            else:
                typer.echo(run_id)
            return
        from ml_expert.runner import approve as approve_run

        if as_json:
            with _stdout_to_stderr():
                result = approve_run(run_id, approved=not reject, note=note, by=by, workspace=workspace)
        else:
            result = approve_run(run_id, approved=not reject, note=note, by=by, workspace=workspace)
    except MLExpertError as exc:
        _fail(exc, as_json, {"run_id": run_id})
        return
    if as_json:
        _emit_json(result.model_dump())
    else:
        _print_summary(result)
    if result.status == "refused":
        raise typer.Exit(EXIT_GATE)


@app.command("install-skill")
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

    try:
        if user == (project is not None):
            raise UsageError("give exactly one of --project DIR or --user")
        path = install(project=project, user=user, force=force)
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _emit_json({"ok": True, "path": str(path)})
    else:
        typer.echo(str(path))


@app.command()
def mcp(
    workspace: WorkspaceOpt = None,
    transport: Annotated[str, typer.Option(help="stdio, or streamable-http.")] = "stdio",
    port: Annotated[int, typer.Option(help="Port for streamable-http (bound to 127.0.0.1).")] = 8765,
) -> None:
    """Serve the MCP tools (start_run, get_status, get_findings, ...) to an agent runtime."""
    from ml_expert.mcp_server import serve

    try:
        if transport not in ("stdio", "streamable-http"):
            raise UsageError("--transport is stdio or streamable-http")
        serve(workspace, transport=transport, port=port)
    except MLExpertError as exc:
        _fail(exc, False)


@memory_app.command("list")
def memory_list(
    run_id: Annotated[str | None, typer.Argument(help="Only this run's keys.")] = None,
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the keys under ml-expert/*."""
    try:
        store = _open_store(memory, workspace)
        keys = store.keys(run_id)
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _emit_json({"ok": True, "backend": store.backend, "keys": keys})
    else:
        for key in keys:
            typer.echo(key)


@memory_app.command("get")
def memory_get(
    key: Annotated[str, typer.Argument(help="Full key (ml-expert/<run_id>/<key>) or <run_id>/<key>.")],
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Print one finding as JSON."""
    try:
        store = _open_store(memory, workspace)
        full = key if key.startswith("ml-expert/") else f"ml-expert/{key}"
        value = store.get_full(full)
        if value is None:
            raise UsageError(f"no value under {full}; `ml-expert memory list` shows the keys")
    except MLExpertError as exc:
        _fail(exc, False)
        return
    _emit_json(value if isinstance(value, dict) else {"value": value})


def _open_store(memory: str | None, workspace: str | None):
    from ml_expert.memory import MemoryUnavailable, open_memory
    from ml_expert.workspace import workspace_path

    try:
        return open_memory(memory, workspace_path(workspace))
    except MemoryUnavailable as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Run id, run directory or deployment directory.")],
    data: Annotated[str, typer.Argument(help="CSV of rows to predict (a target column is ignored).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the predictions CSV.")],
    proba: Annotated[bool, typer.Option("--proba", help="Add proba_<class> columns.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Predict with a deployed model; one output row per input row, in order."""
    from ml_expert.predicting import predict_file

    try:
        count = predict_file(model, data, output, proba=proba, workspace=workspace)
    except MLExpertError as exc:
        _fail(exc, False)
        return
    _stderr_console().print(f"wrote {count} predictions to {output}")


def main() -> None:
    try:
        app()
    except MLExpertError as exc:  # pragma: no cover - commands handle their own
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)


__all__ = ["app", "main", "EXIT_USAGE", "EXIT_DATA"]
