"""`run`, `resume`, `approve`, `status`, `runs`: start a run and follow it.

`run`'s options are generated from :class:`ml_expert.config.RunConfig` (flag, type, default,
help), so the command line cannot drift from the Python API and MCP.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_origin

import typer

from ml_expert.cli.common import (
    JSON_HELP,
    JsonOpt,
    WorkspaceOpt,
    emit_json,
    error_details,
    handles_errors,
    library_output_to,
    stderr_console,
    stdout_to_stderr,
)
from ml_expert.config import RunConfig, cli_meta
from ml_expert.errors import EXIT_GATE


def _keyword(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


# Options of `run` that are not run options: how this command runs, not what the run does.
_COMMAND_OPTIONS = [
    _keyword("as_json", bool, typer.Option(False, "--json", help=JSON_HELP)),
    _keyword(
        "detach",
        bool,
        typer.Option(False, "--detach", help="Start the run in its own process, print its run id, return."),
    ),
    _keyword("run_id", str | None, typer.Option(None, "--run-id", hidden=True)),
    _keyword(
        "config_file",
        str | None,
        typer.Option(None, "--config", hidden=True, help="A config.json (what a detached child reads)."),
    ),
]


def _cli_parameters() -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """One typer parameter per RunConfig field, and the CLI default of each (None: RunConfig's)."""
    params, cli_defaults = [], {}
    for name, field in RunConfig.model_fields.items():
        meta = cli_meta(name)
        annotation = meta.cli_type or field.annotation
        default = None if field.default_factory is not None else field.default
        if get_origin(field.annotation) in (list, dict) or meta.cli_type is not None:
            annotation, default = meta.cli_type or (field.annotation | None), None
        if field.annotation is bool and default is None:
            default = False  # a flag whose default RunConfig computes (from the environment)
        info = (
            typer.Argument(default, help=field.description, show_default=False)
            if meta.argument
            else typer.Option(
                default, *meta.decls, help=field.description, hidden=meta.hidden, metavar=meta.metavar
            )
        )
        params.append(_keyword(name, annotation, info))
        cli_defaults[name] = default
    return params, cli_defaults


_RUN_PARAMETERS, _CLI_DEFAULTS = _cli_parameters()


def _config_from(params: dict[str, Any]) -> RunConfig:
    """Only the options the user gave: RunConfig supplies (and documents) every default."""
    given = {k: v for k, v in params.items() if v is not None and v != _CLI_DEFAULTS[k]}
    return RunConfig.build(**given)


def run(**params: Any) -> None:
    from ml_expert.workspace import check_run_id, new_run_id, workspace_path

    as_json, detach = params.pop("as_json"), params.pop("detach")
    run_id, config_file = params.pop("run_id"), params.pop("config_file")
    run_id = check_run_id(run_id) if run_id else new_run_id()
    ws = workspace_path(params.get("workspace"))
    error_details(run_id=run_id, run_dir=str(ws / "runs" / run_id))
    config = RunConfig.load(Path(config_file)) if config_file else _config_from(params)
    error_details(run_dir=str(Path(config.workspace or ws) / "runs" / run_id))
    if detach:
        from ml_expert.detached import start_detached

        started = start_detached(config, run_id)
        if as_json:
            emit_json(started)
        else:
            stderr_console().print(
                f"started run [bold]{run_id}[/] (pid {started['pid']}); poll with "
                f"`ml-expert status {run_id}`, log: {started['log']}",
                highlight=False,
            )
            typer.echo(run_id)
        return
    from ml_expert.runner import run as run_pipeline

    drive_and_report(
        lambda on_event: run_pipeline(config=config, run_id=run_id, on_event=on_event),
        as_json,
        Path(config.workspace or ws) / "runs" / run_id,
    )


run.__signature__ = inspect.Signature([*_RUN_PARAMETERS, *_COMMAND_OPTIONS])  # type: ignore[attr-defined]
run.__annotations__ = {p.name: p.annotation for p in [*_RUN_PARAMETERS, *_COMMAND_OPTIONS]}
run.__doc__ = "Run the five phases on DATA and ship a validated model."


def drive_and_report(call: Callable[[Any], Any], as_json: bool, run_dir: Path) -> None:
    """Run `call(on_event)` (a run, resume or approval) and report it the same way.

    Rich progress for a person, with what libraries print kept in `<run_dir>/run.log`; with
    --json, stdout silenced until the one JSON object (logs on stderr). A refused gate exits 5.
    """
    if as_json:
        with stdout_to_stderr():
            result = call(None)
    else:
        from rich.console import Console

        from ml_expert.detached import LOG_FILE
        from ml_expert.progress import RichProgress

        with (
            library_output_to(run_dir / LOG_FILE) as terminal,
            RichProgress(Console(file=terminal)) as progress,
        ):
            result = call(progress)
    if as_json:
        emit_json(result.model_dump())
    else:
        _print_summary(result)
    if result.status == "refused":
        raise typer.Exit(EXIT_GATE)


def resume(
    run_id: Annotated[str, typer.Argument(help="The interrupted run's id.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted run: finished phases are not re-run, training resumes from its backup."""
    from ml_expert.runner import resume as resume_run
    from ml_expert.workspace import run_dir, workspace_path

    error_details(run_id=run_id)
    drive_and_report(
        lambda on_event: resume_run(run_id, workspace=workspace, on_event=on_event),
        as_json,
        run_dir(workspace_path(workspace), run_id),
    )


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
    if result.unsynced_findings:
        table.add_row(
            "not in memory",
            f"{len(result.unsynced_findings)} finding(s) kept only as files; "
            f"`ml-expert memory sync {result.run_id}` replays them",
        )
    Console().print(table)


def status(
    run_id: Annotated[str, typer.Argument(help="Run id (default: the newest run).")] = "latest",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Phase, state (running, interrupted, failed, refused, finished) and gate verdicts of a run."""
    from ml_expert.detached import run_summary

    summary = run_summary(workspace, run_id)
    if as_json:
        emit_json(summary)
        return
    from rich.console import Console

    console = Console()
    for key, value in summary.items():
        if key == "unsynced_findings" and value:
            value = (
                f"{len(value)} finding(s) kept only as files, not in memory ({', '.join(value)}); "
                f"`ml-expert memory sync {summary['run_id']}` replays them"
            )
        if value not in (None, [], {}):
            console.print(f"[bold]{key}[/]: {value}", highlight=False)


def runs(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs of the workspace, newest first."""
    from ml_expert.detached import runs_table
    from ml_expert.workspace import workspace_path

    rows = runs_table(workspace)
    if as_json:
        emit_json({"ok": True, "workspace": str(workspace_path(workspace)), "runs": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {workspace_path(workspace)}")
    for column in ("run_id", "status", "phase", "data", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in ("run_id", "status", "phase", "data", "created")))
    Console().print(table)


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
    error_details(run_id=run_id)
    if detach:
        from ml_expert.detached import approve_detached

        started = approve_detached(run_id, workspace, approved=not reject, note=note, by=by)
        if as_json:
            emit_json(started)
        else:
            typer.echo(run_id)
        return
    from ml_expert.runner import approve as approve_run
    from ml_expert.workspace import run_dir, workspace_path

    drive_and_report(
        lambda on_event: approve_run(
            run_id, approved=not reject, note=note, by=by, workspace=workspace, on_event=on_event
        ),
        as_json,
        run_dir(workspace_path(workspace), run_id),
    )


def register(app: typer.Typer) -> None:
    app.command()(handles_errors()(run))
    for command in (resume, status, approve):
        app.command()(handles_errors()(command))
    app.command("runs")(handles_errors()(runs))
