"""`ml-expert mcp`: the MCP server agent runtimes (Claude Code, claude-flow) call.

Claude Code times out long tool calls, so every tool returns at once: `start_run` starts a
detached run and returns its run id; the agent polls `get_status` and reads `get_findings`.
Arguments are validated by pydantic (the tool's signature); a caller's mistake comes back as a
tool error with a message, never as a crashed server.

Register it for a project:  claude mcp add --scope project ml-expert -- ml-expert mcp
Tools then appear as `mcp__ml-expert__start_run`, `mcp__ml-expert__get_status`, ...

Built on the MCP Python SDK 2.x (`MCPServer`; `FastMCP` was the 1.x name). Light at start-up:
no TensorFlow, scikit-learn or LangGraph is imported by the server itself.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from ml_expert import detached
from ml_expert.errors import MLExpertError
from ml_expert.workspace import check_run_id, read_run, run_dir, workspace_path

INSTRUCTIONS = (
    "ml-expert trains, validates and packages ML models. Runs take minutes: call start_run, keep "
    "the run_id, poll get_status every 10-30 s until done is true (or status is awaiting_approval: "
    "then approve_deployment), then read get_findings and use predict."
)
RunId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$", description="Run id from start_run.")
]


def _demo_names() -> set[str]:
    return {p.name[:-4] for p in resources.files("ml_expert.datasets").iterdir() if p.name.endswith(".csv")}


def _guard(fn):
    """Turn a user-caused error (bad run id, missing run, ...) into a tool error with its message."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MLExpertError as exc:
            raise ToolError(exc.message) from exc
        except (ValueError, FileNotFoundError) as exc:
            raise ToolError(str(exc)) from exc

    return call


def findings_of(ws: Path, run_id: str, key: str | None = None) -> dict[str, Any]:
    """A run's findings from its `findings/` folder (the source of truth, whatever the memory backend)."""
    from ml_expert.memory.recorder import FindingsRecorder

    path = run_dir(ws, check_run_id(run_id))
    read_run(path)  # a clear error when the run does not exist
    recorder = FindingsRecorder(None, path, run_id)
    files = recorder.findings()
    if key is None:
        return {k: json.loads(p.read_text()) for k, p in files.items()}
    if key not in files:
        raise ToolError(
            f"run {run_id} has no finding {key!r} (yet); it has: {', '.join(sorted(files)) or 'none'}"
        )
    return {key: json.loads(files[key].read_text())}


def list_models(ws: Path) -> dict[str, Any]:
    """Deployable models. Reads the model registry when this install has one, else the packages of runs.

    Kept thin on purpose: repoint it at `ml_expert.registry` when that lands.
    """
    try:
        from ml_expert import registry  # type: ignore[attr-defined]  # built on another branch

        lister = getattr(registry, "list_models", None)
    except ImportError:
        lister = None
    if lister is not None:
        return {"source": "registry", "models": lister(ws)}
    models = []
    for row in detached.runs_table(ws):
        package = run_dir(ws, row["run_id"]) / "deployment"
        manifest_file = package / "manifest.json"
        if row["status"] != "finished" or not manifest_file.exists():
            continue
        manifest = json.loads(manifest_file.read_text())
        models.append(
            {
                "run_id": row["run_id"],
                "model": manifest.get("model"),
                "task": manifest.get("task"),
                "metrics": manifest.get("metrics", {}),
                "package_dir": str(package),
                "created": row.get("created"),
            }
        )
    return {
        "source": "deployment packages of finished runs (no model registry in this install)",
        "models": models,
    }


class _Predictors:
    """Verified deployment packages kept loaded, keyed by path and manifest change time."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, float], Any] = {}

    def get(self, package: Path) -> Any:
        from ml_expert.runtime import inference

        key = (str(package), (package / "manifest.json").stat().st_mtime)
        if key not in self._cache:
            try:
                self._cache[key] = inference.ModelInference(str(package))
            except inference.IntegrityError as exc:
                raise ToolError(f"deployment package {package} failed its integrity check: {exc}") from exc
        return self._cache[key]


def build_server(workspace: str | Path | None = None) -> MCPServer:
    """The server with its tools bound to one workspace."""
    ws = workspace_path(workspace)
    server = MCPServer("ml-expert", instructions=INSTRUCTIONS)
    predictors = _Predictors()

    @server.tool()
    @_guard
    def start_run(
        data: Annotated[
            str | None,
            Field(description="CSV/Parquet/.npz path or image folder, or a demo name (iris, ...)."),
        ] = None,
        target: Annotated[str, Field(min_length=1, description="Label column.")] = "target",
        budget: Annotated[
            float, Field(gt=0, le=86400, description="Seconds for selection plus training.")
        ] = 120.0,
        seed: Annotated[int, Field(ge=0)] = 42,
        train_dnn: Annotated[bool, Field(description="Also train the Keras network.")] = True,
        tune: Annotated[
            bool, Field(description="Search the best baseline's hyperparameters within the budget.")
        ] = False,
        ray: Annotated[
            str | None,
            Field(description="Ray cluster for the fits: HOST:PORT, ray://HOST:PORT, auto or local."),
        ] = None,
        workers: Annotated[
            int, Field(ge=1, le=1024, description="Data-parallel network workers (with ray).")
        ] = 1,
        modality: Literal["auto", "tabular", "image", "text", "sequence"] = "auto",
        min_metric: Annotated[
            dict[str, float] | None, Field(description="Validation gate thresholds, e.g. {'accuracy': 0.9}.")
        ] = None,
        require_approval: Annotated[
            bool, Field(description="Stop before deployment until approved.")
        ] = False,
        claude_flow_sync: Annotated[
            bool, Field(description="Mirror findings into claude-flow memory.")
        ] = False,
    ) -> dict[str, Any]:
        """Start a training run in the background and return its run_id at once; poll get_status."""
        if data is not None and data not in _demo_names():
            path = Path(data).expanduser()
            if not path.exists():
                raise ToolError(
                    f"{data}: no such file or folder (give a path or one of {sorted(_demo_names())})"
                )
            data = str(path.resolve())
        args = [data] if data else []
        args += ["--target", target, "--budget", str(budget), "--seed", str(seed), "--modality", modality]
        for name, value in (min_metric or {}).items():
            args += ["--min-metric", f"{name}={value}"]
        if not train_dnn:
            args.append("--no-dnn")
        if tune:
            args.append("--tune")
        if ray:
            args += ["--ray", ray]
        if workers > 1:
            args += ["--workers", str(workers)]
        if require_approval:
            args.append("--require-approval")
        if claude_flow_sync:
            args.append("--claude-flow-sync")
        return detached.start_detached(args, ws)

    @server.tool()
    @_guard
    def get_status(run_id: RunId | Literal["latest"] = "latest") -> dict[str, Any]:
        """Status, phase, gate verdicts and outcome of a run; `done` is true once it ended."""
        detached.reap_children()
        return detached.run_summary(ws, run_id)

    @server.tool()
    @_guard
    def get_findings(
        run_id: RunId,
        key: Annotated[
            str | None,
            Field(
                description="data-analysis, model-selection, training, metrics, deployment, status, "
                "guardrails/<gate>; omit for all."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The findings the agents shared for a run (one key, or all of them)."""
        return {"run_id": run_id, "findings": findings_of(ws, run_id, key)}

    @server.tool()
    @_guard
    def list_runs() -> dict[str, Any]:
        """Every run of the workspace, newest first."""
        detached.reap_children()
        return {"workspace": str(ws), "runs": detached.runs_table(ws)}

    @server.tool(name="list_models")
    @_guard
    def list_models_tool() -> dict[str, Any]:
        """Models ready to serve or predict with."""
        return list_models(ws)

    @server.tool()
    @_guard
    def predict(
        run_id: RunId,
        rows: Annotated[
            list[dict[str, Any]], Field(min_length=1, max_length=10000, description="Input rows.")
        ],
        proba: Annotated[bool, Field(description="Also return class probabilities.")] = False,
    ) -> dict[str, Any]:
        """Predict rows (JSON objects keyed by column) with a finished run's deployment package."""
        from ml_expert.predicting import resolve_deployment
        from ml_expert.runtime import inference

        model = predictors.get(resolve_deployment(check_run_id(run_id), ws))
        try:
            out: dict[str, Any] = {"run_id": run_id, "predictions": [_plain(v) for v in model.predict(rows)]}
            if proba:
                if model.task != "classification":
                    raise ToolError("proba applies to classification models only")
                out["classes"] = [_plain(c) for c in model.classes]
                out["probabilities"] = [[float(p) for p in row] for row in model.predict_proba(rows)]
        except inference.SchemaError as exc:
            raise ToolError(f"rows do not fit the model's input schema: {exc}") from exc
        return out

    @server.tool()
    @_guard
    def approve_deployment(
        run_id: RunId,
        approve: Annotated[bool, Field(description="true deploys; false ends the run refused.")] = True,
        note: Annotated[str | None, Field(max_length=2000)] = None,
    ) -> dict[str, Any]:
        """Resume a run waiting with status awaiting_approval (in the background); poll get_status."""
        return detached.approve_detached(run_id, ws, approved=approve, note=note, by="mcp")

    @server.resource("ml-expert://runs", mime_type="application/json")
    def runs_resource() -> str:
        """Every run of the workspace."""
        return json.dumps(detached.runs_table(ws), default=str)

    @server.resource("ml-expert://runs/{run_id}/findings", mime_type="application/json")
    def all_findings_resource(run_id: str) -> str:
        """All findings of a run."""
        try:
            return json.dumps(findings_of(ws, run_id), default=str)
        except (MLExpertError, ToolError) as exc:
            raise ResourceError(getattr(exc, "message", str(exc))) from exc

    @server.resource("ml-expert://runs/{run_id}/findings/{+key}", mime_type="application/json")
    def finding_resource(run_id: str, key: str) -> str:
        """One finding of a run (the key may contain '/', e.g. guardrails/data)."""
        try:
            return json.dumps(findings_of(ws, run_id, key)[key], default=str)
        except (MLExpertError, ToolError) as exc:
            raise ResourceError(getattr(exc, "message", str(exc))) from exc

    return server


def _plain(value: Any) -> Any:
    """numpy scalars to JSON types."""
    return value.item() if hasattr(value, "item") else value


def serve(workspace: str | Path | None = None, transport: str = "stdio", port: int = 8765) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    server = build_server(workspace)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)  # type: ignore[call-overload]
