"""`predict`, `serve`, `drift`: use a released model. Each names it the same way (one resolver)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, WorkspaceOpt, emit_json, handles_errors, stderr_console
from ml_expert.errors import UsageError

SWITCH_INTERVAL_S = 0.0005  # sys.setswitchinterval while serving (CPython's default: 0.005)

MODEL_HELP = (
    "Registry model NAME (its production), NAME@previous, version (v3), production or previous (one "
    "model in the registry), run id, run or deployment folder."
)


@handles_errors(json_errors=False)
def predict(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    data: Annotated[str, typer.Argument(help="CSV of rows to predict (a target column is ignored).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the predictions CSV.")],
    proba: Annotated[
        bool,
        typer.Option("--proba", help="Add proba_<class> columns (clustering: distance_<c>/probability_<c>)."),
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Predict with a deployed model; one output row per input row, in order."""
    from ml_expert.predicting import predict_file

    count = predict_file(model, data, output, proba=proba, workspace=workspace)
    stderr_console().print(f"wrote {count} predictions to {output}")


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


@handles_errors(json_errors=False)
def serve(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)] = "production",
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    canary: Annotated[
        str | None, typer.Option(help="VERSION:FRACTION: send that share of requests to a second version.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require this X-API-Key header (shows in `ps`: prefer $ML_EXPERT_API_KEY or --api-key-file)."
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option(help="Read the API key from this file (first line).")
    ] = None,
    open_metrics: Annotated[
        bool, typer.Option("--open-metrics", help="Leave /metrics open (for a scraper) when a key is set.")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health /metadata /metrics /drift, /docs.

    With an API key every endpoint but /health needs the X-API-Key header (/metrics too, unless
    --open-metrics). Header and body reads time out, so half-sent requests cannot pile up."""
    from ml_expert.errors import IntegrityError
    from ml_expert.registry import resolve_package
    from ml_expert.runtime.inference import IntegrityError as PackageIntegrityError

    key = _api_key(api_key, api_key_file)
    split = _parse_canary(canary)
    path, version = resolve_package(model, workspace)
    from ml_expert.serving.app import create_app, load_served

    try:
        primary = load_served(path, version)
        second = load_served(*resolve_package(split[0], workspace)) if split else None
    except PackageIntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    try:
        application = create_app(primary, second, split[1] if split else 0.0, key, open_metrics=open_metrics)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    import uvicorn

    from ml_expert.serving.timeouts import TimedH11Protocol

    stderr_console().print(f"serving {version} on http://{host}:{port} (docs at /docs)")
    # Batches run in worker threads; the event loop answers /health and single rows. CPython hands
    # the GIL over every 5 ms by default, so a loop waiting behind three busy threads waits 5 ms a
    # turn: a shorter interval keeps short requests short while batches run.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=TimedH11Protocol,
        backlog=2048,
        timeout_keep_alive=5,
    )


def _api_key(given: str | None, file: Path | None) -> str | None:
    """The key from --api-key, else --api-key-file, else $ML_EXPERT_API_KEY; none: open."""
    if given:
        return given
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--api-key-file {file}: cannot read a key ({exc})") from None
        if not lines or not lines[0].strip():
            raise UsageError(f"--api-key-file {file}: the file is empty")
        return lines[0].strip()
    return os.environ.get("ML_EXPERT_API_KEY") or None


@handles_errors()
def drift(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    data: Annotated[str, typer.Argument(help="CSV (or Parquet) of new rows to compare with training.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare new data with the model's training statistics (KS numeric, PSI categorical)."""
    from ml_expert.errors import DataError
    from ml_expert.hashing import verify
    from ml_expert.registry import resolve_package

    path, version = resolve_package(model, workspace)
    from ml_expert.tools.deployment.manifest import PackageManifest

    manifest = PackageManifest.read(path)
    if "training_stats.json" not in manifest.files:
        raise UsageError(f"{model}: the package has no training_stats.json (built before drift support)")
    verify(path / "training_stats.json", manifest.files["training_stats.json"])
    stats = json.loads((path / "training_stats.json").read_text())
    from ml_expert.tools.data.loading import load_table
    from ml_expert.tools.validation.drift import compare

    frame, _ = load_table(data)
    missing = [c for c in stats["columns"] if c not in frame.columns]
    if missing:
        raise DataError(f"{data}: columns the model takes are missing: {missing}")
    result = compare(stats, {c: frame[c].tolist() for c in stats["columns"]})
    payload = {"ok": True, "version": version, "rows": len(frame), **result}
    if as_json:
        emit_json(payload)
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


def register(app: typer.Typer) -> None:
    for command in (predict, serve, drift):
        app.command()(command)
