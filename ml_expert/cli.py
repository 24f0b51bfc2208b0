"""`ml-expert`: the command line. Thin: parses, calls the public API, prints.

Heavy libraries (TensorFlow, Keras, scikit-learn) are imported only inside the commands that
train or predict, so `--help`, `status` and `memory` start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
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
models_app = typer.Typer(
    help="Released model versions: list, show, promote, rollback (aliases production/previous).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

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
    ctx: typer.Context,
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
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Largest allowed single-row p99 (ms) of the package. Default 100.")
    ] = None,
    max_fairness_gap: Annotated[
        float | None,
        typer.Option(help="Largest allowed equalized-odds (or relative per-group MAE) gap. Default 0.2."),
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="Column to check fairness across (repeatable); default: by name."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace production even if the new model scores worse.")
    ] = False,
    no_dnn: Annotated[bool, typer.Option("--no-dnn", help="Do not train the Keras network.")] = False,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Search the best baseline's hyperparameters "
            "(3-fold CV on train; trials counted from the budget).",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            envvar="ML_EXPERT_RAY",
            help="Run the independent fits as tasks on a Ray cluster: HOST:PORT, ray://HOST:PORT, auto "
            "(RAY_ADDRESS) or local (a throw-away local cluster, stopped at the end). Needs the `ray` extra.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Train the network data-parallel on N Ray Train workers (torch backend, DDP; needs --ray).",
        ),
    ] = 1,
    modality: Annotated[
        str,
        typer.Option(
            help="auto, tabular, image (pixel columns), text (a free-text column read word by word) "
            "or sequence (numeric columns as the ordered steps of one signal)."
        ),
    ] = "auto",
    dnn_learning_rate: Annotated[
        float | None,
        typer.Option("--dnn-learning-rate", hidden=True, help="Advanced: the network's start LR."),
    ] = None,
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
    from ml_expert.execution.address import address_from, check_workers
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
        for name, value in (("--max-latency-ms", max_latency_ms), ("--max-fairness-gap", max_fairness_gap)):
            if value is not None and value <= 0:
                raise UsageError(f"{name} must be positive")
        if detach:
            _start_detached(_detached_args(ctx), ws, run_id, as_json)
            return
        from ml_expert.runner import run as run_pipeline

        kwargs = dict(
            seed=seed,
            budget=budget,
            workspace=ws,
            memory=memory,
            min_metric=thresholds,
            max_overfit_gap=max_overfit_gap,
            max_latency_ms=max_latency_ms,
            max_fairness_gap=max_fairness_gap,
            sensitive=sensitive or [],
            force=force,
            train_dnn=not no_dnn,
            tune=tune,
            ray=address_from(ray),
            workers=check_workers(workers, address_from(ray)),
            modality=modality,
            dnn_learning_rate=dnn_learning_rate,
            run_id=run_id,
            require_approval=require_approval,
            claude_flow_sync=claude_flow_sync,
        )
        if dnn_learning_rate is not None and not dnn_learning_rate > 0:
            raise UsageError("--dnn-learning-rate must be positive")
    except MLExpertError as exc:
        _fail(exc, as_json, extra)
        return
    _drive_and_report(
        lambda on_event: run_pipeline(data, target, on_event=on_event, **kwargs), as_json, extra
    )


def _drive_and_report(call: Callable[[Any], Any], as_json: bool, extra: dict[str, Any]) -> None:
    """Run `call(on_event)` (a run, resume or approval) and report it the same way.

    Rich progress for a person; with --json, stdout silenced until the one JSON object. A refused
    gate exits 5.
    """
    try:
        if as_json:
            with _stdout_to_stderr():
                result = call(None)
        else:
            from ml_expert.progress import RichProgress

            with RichProgress(_stderr_console()) as progress:
                result = call(progress)
    except MLExpertError as exc:
        _fail(exc, as_json, extra)
        return
    if as_json:
        _emit_json(result.model_dump())
    else:
        _print_summary(result)
    if result.status == "refused":
        raise typer.Exit(EXIT_GATE)


# Options that the detached child gets from start_detached itself, or that only matter here.
_NOT_FORWARDED = {"detach", "as_json", "workspace", "run_id_opt"}


def _detached_args(ctx: typer.Context) -> list[str]:
    """The same `run` invocation, rebuilt from the parsed parameters (so every option is forwarded)."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in _NOT_FORWARDED or value is None or value == param.default or value in ((), []):
            continue
        if param.param_type_name == "argument":
            args.insert(0, str(value))
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        elif getattr(param, "multiple", False):
            for item in value:
                args += [param.opts[0], str(item)]
        else:
            args += [param.opts[0], str(value)]
    return args


def _start_detached(args: list[str], ws, run_id: str, as_json: bool) -> None:
    """Re-issue the same `run` in a detached process (flags validated here, before it starts)."""
    from ml_expert.detached import start_detached

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


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The interrupted run's id.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted run: finished phases are not re-run, training resumes from its backup."""
    from ml_expert.runner import resume as resume_run

    _drive_and_report(
        lambda on_event: resume_run(run_id, workspace=workspace, on_event=on_event),
        as_json,
        {"run_id": run_id},
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
    Console().print(table)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id (default: the newest run).")] = "latest",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Phase, state (running, interrupted, failed, refused, finished) and gate verdicts of a run."""
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
    except MLExpertError as exc:
        _fail(exc, as_json, {"run_id": run_id})
        return
    from ml_expert.runner import approve as approve_run

    _drive_and_report(
        lambda on_event: approve_run(
            run_id, approved=not reject, note=note, by=by, workspace=workspace, on_event=on_event
        ),
        as_json,
        {"run_id": run_id},
    )


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


def _registry(workspace: str | None):
    from ml_expert.registry import Registry
    from ml_expert.workspace import workspace_path

    return Registry(workspace_path(workspace))


@models_app.command("list")
def models_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered version, newest last, with its aliases and test score."""
    registry = _registry(workspace)
    versions = registry.versions()
    if as_json:
        _emit_json({"ok": True, "aliases": registry.aliases(), "versions": versions})
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


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Version (v3) or alias (production, previous).")] = "production",
    workspace: WorkspaceOpt = None,
    audit: Annotated[bool, typer.Option("--audit", help="Also print the audit log.")] = False,
) -> None:
    """One version's metadata as JSON (metrics, data fingerprint, run, who registered it)."""
    try:
        registry = _registry(workspace)
        info = registry.show(name)
    except MLExpertError as exc:
        _fail(exc, True)
        return
    if audit:
        info["audit"] = registry.audit()
    _emit_json(info)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Version to make production (v3).")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION production; the current production becomes previous. Audited."""
    try:
        aliases = _registry(workspace).promote(version)
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    _report_aliases(aliases, as_json)


@models_app.command("rollback")
def models_rollback(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Point production back at previous (the two swap, so a second rollback undoes it). Audited."""
    try:
        aliases = _registry(workspace).rollback()
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    _report_aliases(aliases, as_json)


def _report_aliases(aliases: dict[str, str], as_json: bool) -> None:
    if as_json:
        _emit_json({"ok": True, "aliases": aliases})
    else:
        _stderr_console().print(", ".join(f"{k} -> {v}" for k, v in aliases.items()))


def _parse_canary(value: str | None) -> tuple[str, float] | None:
    if value is None:
        return None
    name, sep, fraction = value.rpartition(":")
    try:
        share = float(fraction)
        if not sep or not name or not 0 < share < 1:
            raise ValueError
    except ValueError:
        raise UsageError(f"--canary expects VERSION:FRACTION with 0 < FRACTION < 1, got {value!r}") from None
    return name, share


@app.command()
def serve(
    model: Annotated[
        str, typer.Argument(help="Registry alias or version, run id, or deployment directory.")
    ] = "production",
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    canary: Annotated[
        str | None, typer.Option(help="VERSION:FRACTION: send that share of requests to a second version.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="Require this X-API-Key header (default: $ML_EXPERT_API_KEY; none: open)."),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health /metadata /metrics /drift, /docs."""
    from ml_expert.errors import IntegrityError
    from ml_expert.runtime.inference import IntegrityError as PackageIntegrityError
    from ml_expert.serving.resolve import resolve_package

    try:
        split = _parse_canary(canary)
        path, version = resolve_package(model, workspace)
        from ml_expert.serving.app import create_app, load_served

        try:
            primary = load_served(path, version)
            second = load_served(*resolve_package(split[0], workspace)) if split else None
        except PackageIntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        try:
            application = create_app(
                primary, second, split[1] if split else 0.0, api_key or os.environ.get("ML_EXPERT_API_KEY")
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    except MLExpertError as exc:
        _fail(exc, False)
        return
    import uvicorn

    _stderr_console().print(f"serving {version} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def drift(
    model: Annotated[str, typer.Argument(help="Registry alias or version, run id, or deployment directory.")],
    data: Annotated[str, typer.Argument(help="CSV (or Parquet) of new rows to compare with training.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare new data with the model's training statistics (KS numeric, PSI categorical)."""
    from ml_expert.errors import DataError
    from ml_expert.hashing import verify
    from ml_expert.serving.resolve import resolve_package

    try:
        path, version = resolve_package(model, workspace)
        manifest = json.loads((path / "manifest.json").read_text())
        if "training_stats.json" not in manifest.get("files", {}):
            raise UsageError(f"{model}: the package has no training_stats.json (built before drift support)")
        verify(path / "training_stats.json", manifest["files"]["training_stats.json"])
        stats = json.loads((path / "training_stats.json").read_text())
        from ml_expert.tools.data.loading import load_table
        from ml_expert.tools.validation.drift import compare

        frame, _ = load_table(data)
        missing = [c for c in stats["columns"] if c not in frame.columns]
        if missing:
            raise DataError(f"{data}: columns the model takes are missing: {missing}")
        result = compare(stats, {c: frame[c].tolist() for c in stats["columns"]})
    except MLExpertError as exc:
        _fail(exc, as_json)
        return
    payload = {"ok": True, "version": version, "rows": len(frame), **result}
    if as_json:
        _emit_json(payload)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"drift of {data} against {version}'s training data")
    for column in ("column", "test", "statistic", "p-value", "drift"):
        table.add_column(column)
    for name, r in result["columns"].items():
        stat = r.get("statistic", r.get("psi"))
        table.add_row(
            name,
            str(r.get("test")),
            "-" if stat is None else f"{stat:.4f}",
            f"{r['p_value']:.3g}" if "p_value" in r else "-",
            "DRIFT" if r.get("drift") else "ok",
        )
    Console().print(table)


def main() -> None:
    try:
        app()
    except MLExpertError as exc:  # pragma: no cover - commands handle their own
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)


__all__ = ["app", "main", "EXIT_USAGE", "EXIT_DATA"]
