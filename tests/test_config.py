"""RunConfig is the one declaration of the run options: the CLI, the Python API, MCP and the
LangGraph input all take it, and a value it refuses is a usage error everywhere."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert.config import RunConfig
from ml_expert.errors import UsageError

CLI = [sys.executable, "-m", "ml_expert"]


@pytest.mark.parametrize("budget", [0, -5])
def test_python_api_refuses_a_budget_that_is_not_positive(budget: float, workspace: Path) -> None:
    """It used to become 120 seconds silently (`budget or DEFAULT_BUDGET`)."""
    from ml_expert import run

    with pytest.raises(UsageError, match="--budget"):
        run("iris", budget=budget, workspace=workspace, memory="embedded")
    assert not (workspace / "runs").exists()


def test_cli_refuses_bad_options_with_one_usage_error(workspace: Path) -> None:
    for args, flag in (
        (["--budget", "0"], "--budget"),
        (["--min-metric", "accuracy"], "--min-metric"),
        (["--keep", "a", "--drop", "a"], "--keep and --drop"),
        (["--max-latency-ms", "-1"], "--max-latency-ms"),
    ):
        proc = subprocess.run(
            [*CLI, "run", "iris", "--json", "--workspace", str(workspace), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        out = json.loads(proc.stdout)
        assert out["ok"] is False and out["error_kind"] == "usage" and flag in out["error"], out
        assert "Traceback" not in proc.stderr


def test_cli_version() -> None:
    from ml_expert import __version__

    proc = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ml-expert {__version__}"


def test_cli_run_has_every_option_with_its_help() -> None:
    from typer.main import get_command

    from ml_expert.cli import app

    params = {p.name: p for p in get_command(app).commands["run"].params}
    for name, field in RunConfig.model_fields.items():
        assert name in params, name
        assert params[name].help == field.description or params[name].param_type_name == "argument"


def test_mcp_start_run_takes_every_option_with_a_description(workspace: Path) -> None:
    from ml_expert.mcp_server import build_server

    tools = {t.name: t for t in asyncio.run(build_server(workspace).list_tools())}
    schema = tools["start_run"].input_schema["properties"]
    # every option but the workspace, which is the server's own
    assert set(schema) == set(RunConfig.model_fields) - {"workspace"}
    assert all(prop.get("description") for prop in schema.values()), schema
    assert schema["budget"]["exclusiveMinimum"] == 0


def test_config_round_trips_through_the_json_a_detached_child_reads(tmp_path: Path) -> None:
    config = RunConfig.build(
        data="iris", budget=7, min_metric=["accuracy=0.9"], keep=["a"], train_dnn=False, workspace=tmp_path
    )
    assert config.min_metric == {"accuracy": 0.9} and config.workspace == str(tmp_path.resolve())
    assert RunConfig.load(config.save(tmp_path / "config.json")) == config
    assert RunConfig.of({"options": config.options()}) == config
    with pytest.raises(UsageError, match="unknown option"):
        RunConfig.build(budgett=3)


def test_langgraph_input_schema_lists_the_run_options() -> None:
    from ml_expert.graph.state import RunOptions

    assert set(RunOptions.__annotations__) == set(RunConfig.model_fields)
