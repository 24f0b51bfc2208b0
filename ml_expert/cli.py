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
        str | None, typer.Argument(help="CSV file, or a demo name (breast_cancer, iris, ...). Default: demo.")
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
    dnn_learning_rate: Annotated[
        float | None,
        typer.Option("--dnn-learning-rate", hidden=True, help="Advanced: the network's start LR."),
    ] = None,
    workspace: WorkspaceOpt = None,
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the five phases on DATA and ship a validated model."""
    from ml_expert.runner import run as run_pipeline
    from ml_expert.workspace import new_run_id, workspace_path

    run_id = new_run_id()
    ws = workspace_path(workspace)
    extra = {"run_id": run_id, "run_dir": str(ws / "runs" / run_id)}
    try:
        thresholds = _parse_min_metric(min_metric)
        if budget <= 0:
            raise UsageError("--budget must be positive")
        kwargs = dict(
            seed=seed,
            budget=budget,
            workspace=ws,
            memory=memory,
            min_metric=thresholds,
            max_overfit_gap=max_overfit_gap,
            train_dnn=not no_dnn,
            modality=modality,
            dnn_learning_rate=dnn_learning_rate,
            run_id=run_id,
        )
        if dnn_learning_rate is not None and not dnn_learning_rate > 0:
            raise UsageError("--dnn-learning-rate must be positive")
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


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The interrupted run's id.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted run: finished phases are not re-run, training resumes from its backup."""
    from ml_expert.runner import resume as resume_run

    try:
        if as_json:
            with _stdout_to_stderr():
                result = resume_run(run_id, workspace=workspace)
        else:
            from ml_expert.progress import RichProgress

            with RichProgress(_stderr_console()) as progress:
                result = resume_run(run_id, workspace=workspace, on_event=progress)
    except MLExpertError as exc:
        _fail(exc, as_json, {"run_id": run_id})
        return
    if as_json:
        _emit_json(result.model_dump())
    else:
        _print_summary(result)
    if result.status == "refused":
        raise typer.Exit(EXIT_GATE)


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
    """Phase, state (running, interrupted, failed, refused, finished) and gate verdicts of a run."""
    from ml_expert.runner import run_state
    from ml_expert.workspace import list_runs, read_run, run_dir, workspace_path

    ws = workspace_path(workspace)
    try:
        if run_id == "latest":
            runs = list_runs(ws)
            if not runs:
                raise UsageError(f"no runs in {ws}")
            run_id = max(runs, key=lambda r: r.get("created") or "")["run_id"]
        data = read_run(run_dir(ws, run_id))
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    summary = {
        "run_id": run_id,
        "status": run_state(data),
        "phase": data.get("phase"),
        "pid": data.get("pid"),
        "created": data.get("created"),
        "updated": data.get("updated"),
        "gates": {k: v.get("passed") for k, v in data.get("gates", {}).items()},
        "reason": data.get("reason"),
        "error": data.get("error"),
    }
    if as_json:
        _emit_json(summary)
        return
    from rich.console import Console

    console = Console()
    for key, value in summary.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


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
