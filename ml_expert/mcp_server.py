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
import inspect
import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from ml_expert import __version__, detached
from ml_expert.config import RunConfig, api_parameters
from ml_expert.errors import MLExpertError
from ml_expert.mcp_models import (
    ApprovalStarted,
    Findings,
    ModelList,
    Prediction,
    RunList,
    RunStatusReport,
    StartedRun,
)
from ml_expert.workspace import check_run_id, read_run, run_dir, workspace_path

INSTRUCTIONS = (
    "ml-expert trains, validates and packages ML models. Runs take minutes: call start_run, keep "
    "the run_id, poll get_status every 10-30 s until done is true (or status is awaiting_approval: "
    "then approve_deployment), then read get_findings and use predict."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
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
    """The registry's released versions with their aliases (what `ml-expert models list` shows)."""
    from ml_expert.registry import Registry

    registry = Registry(ws)
    return {
        "source": "registry",
        "models": registry.versions(every_model=True),
        "aliases": {name or "": Registry(ws, model=name).aliases() for name in registry.model_names()},
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
    server = MCPServer("ml-expert", instructions=INSTRUCTIONS, version=__version__)
    predictors = _Predictors()

    def start_run(**options: Any) -> StartedRun:
        """Start a training run in the background and return its run_id at once; poll get_status."""
        data = options.get("data")
        if data is not None and data not in _demo_names():
            path = Path(data).expanduser()
            if not path.exists():
                raise ToolError(
                    f"{data}: no such file or folder (give a path or one of {sorted(_demo_names())})"
                )
            options["data"] = str(path.resolve())
        return StartedRun.model_validate(
            detached.start_detached(RunConfig.build(**options, workspace=str(ws)))
        )

    # Every run option but the workspace (this server's own), with RunConfig's types,
    # constraints, defaults and descriptions.
    start_run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p for p in api_parameters() if p.name != "workspace"], return_annotation=StartedRun
    )
    server.tool()(_guard(start_run))

    @server.tool(annotations=READ_ONLY)
    @_guard
    def get_status(
        run_id: Annotated[
            RunId | Literal["latest"],
            Field(description="Run id from start_run, or `latest` for the newest run."),
        ] = "latest",
    ) -> RunStatusReport:
        """Status, phase, gate verdicts and outcome of a run; `done` is true once it ended."""
        detached.reap_children()
        return RunStatusReport.model_validate(detached.run_summary(ws, run_id))

    @server.tool(annotations=READ_ONLY)
    @_guard
    def get_findings(
        run_id: RunId,
        key: Annotated[
            str | None,
            Field(
                description="summary (one paragraph: start here), data-analysis, model-selection, training, "
                "metrics, deployment, registry, status, guardrails/<gate>; omit for all."
            ),
        ] = None,
    ) -> Findings:
        """The findings the agents shared for a run (one key, or all of them)."""
        return Findings(run_id=run_id, findings=findings_of(ws, run_id, key))

    @server.tool(annotations=READ_ONLY)
    @_guard
    def list_runs() -> RunList:
        """Every run of the workspace, newest first."""
        detached.reap_children()
        return RunList.model_validate({"workspace": str(ws), "runs": detached.runs_table(ws)})

    @server.tool(name="list_models", annotations=READ_ONLY)
    @_guard
    def list_models_tool() -> ModelList:
        """Models ready to serve or predict with."""
        return ModelList.model_validate(list_models(ws))

    @server.tool(annotations=READ_ONLY)
    @_guard
    def predict(
        rows: Annotated[
            list[dict[str, Any]],
            Field(
                min_length=1,
                max_length=10000,
                description="Input rows, each a JSON object keyed by input column. The columns are the "
                "`features` of the run's `data-analysis` finding (get_findings), the target excluded.",
            ),
        ],
        run_id: Annotated[
            RunId | None, Field(description="The finished run whose deployment package predicts.")
        ] = None,
        model: Annotated[
            str | None,
            Field(
                pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,80}$",
                description="Instead of run_id: a registry model NAME (its production), NAME@previous, "
                "a version (v3), or production / previous when the registry holds one model.",
            ),
        ] = None,
        proba: Annotated[
            bool, Field(description="Also return class probabilities (classification models only).")
        ] = False,
    ) -> Prediction:
        """Predict rows (JSON objects keyed by column) with a released model or a finished run's package."""
        from ml_expert.registry import resolve_package
        from ml_expert.runtime import inference

        if (run_id is None) == (model is None):
            raise ToolError("give exactly one of run_id or model")
        name = check_run_id(run_id) if run_id else str(model)
        package, label = resolve_package(name, ws)
        loaded = predictors.get(package)
        try:
            out: dict[str, Any] = {
                "run_id": run_id,
                "model": label,
                "predictions": [_plain(v) for v in loaded.predict(rows)],
            }
            if proba:
                if loaded.task != "classification":
                    raise ToolError("proba applies to classification models only")
                out["classes"] = [_plain(c) for c in loaded.classes]
                out["probabilities"] = [[float(p) for p in row] for row in loaded.predict_proba(rows)]
        except inference.SchemaError as exc:
            raise ToolError(f"rows do not fit the model's input schema: {exc}") from exc
        return Prediction.model_validate(out)

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False))
    @_guard
    def approve_deployment(
        run_id: RunId,
        approve: Annotated[bool, Field(description="true deploys; false ends the run refused.")] = True,
        note: Annotated[
            str | None, Field(max_length=2000, description="Why (kept in run.json under `approval`).")
        ] = None,
    ) -> ApprovalStarted:
        """Resume a run waiting with status awaiting_approval (in the background); poll get_status."""
        return ApprovalStarted.model_validate(
            detached.approve_detached(run_id, ws, approved=approve, note=note, by="mcp")
        )

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
