"""The MCP server driven as Claude Code drives it: the SDK's client over stdio, a real run.

List the tools, start a run on iris (no DNN, small budget) that returns at once, poll to the
end, read the findings (tool and resource), predict rows, and check that bad input comes back as
a tool error while the server keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "start_run",
    "get_status",
    "get_findings",
    "list_runs",
    "list_models",
    "predict",
    "approve_deployment",
}


def _server(workspace: Path) -> StdioServerParameters:
    # The stdio client passes only a safe subset of the environment: hand PYTHONPATH on so the
    # server runs this checkout's ml_expert.
    env = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "PATH", "HOME", "TF_CPP_MIN_LOG_LEVEL")}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "ml_expert", "mcp", "--workspace", str(workspace)], env=env
    )


async def _call(session: ClientSession, name: str, **arguments: Any) -> tuple[bool, Any]:
    result = await session.call_tool(name, arguments)
    if result.is_error:
        return False, " ".join(getattr(c, "text", "") for c in result.content)
    if result.structured_content is not None:
        return True, result.structured_content
    return True, json.loads(result.content[0].text)


async def _scenario(workspace: Path, datasets: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with stdio_client(_server(workspace)) as (read, write), ClientSession(read, write) as session:
        out["init"] = await session.initialize()
        out["tool_defs"] = (await session.list_tools()).tools
        out["tools"] = {t.name for t in out["tool_defs"]}

        t0 = time.monotonic()
        ok, started = await _call(session, "start_run", data="iris", budget=60, train_dnn=False, seed=3)
        out["start_seconds"] = time.monotonic() - t0
        assert ok, started
        run_id = started["run_id"]
        out["started"] = started

        deadline = time.monotonic() + 240
        polls = []
        while True:
            ok, status = await _call(session, "get_status", run_id=run_id)
            assert ok, status
            polls.append(status["status"])
            if status["done"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        out["status"], out["polls"] = status, polls
        assert status["status"] == "finished", status

        out["findings_all"] = (await _call(session, "get_findings", run_id=run_id))[1]
        out["findings_metrics"] = (await _call(session, "get_findings", run_id=run_id, key="metrics"))[1]
        out["missing_key"] = await _call(session, "get_findings", run_id=run_id, key="no-such-key")
        resource = await session.read_resource(f"ml-expert://runs/{run_id}/findings/guardrails/validation")
        out["resource_gate"] = json.loads(resource.contents[0].text)

        rows = pd.read_csv(datasets / "iris.csv").drop(columns=["target"]).head(5).to_dict(orient="records")
        out["rows"] = rows
        out["predict"] = await _call(session, "predict", run_id=run_id, rows=rows, proba=True)
        out["predict_bad_row"] = await _call(session, "predict", run_id=run_id, rows=[{"nonsense": 1}])
        out["runs"] = (await _call(session, "list_runs"))[1]
        out["models"] = (await _call(session, "list_models"))[1]
        out["bad_budget"] = await _call(session, "start_run", data="iris", budget=-1)
        out["bad_run_id"] = await _call(session, "get_status", run_id="../etc")
        out["unknown_run"] = await _call(session, "get_status", run_id="no-such-run")
        out["missing_file"] = await _call(session, "start_run", data=str(workspace / "nope.csv"))
        out["approve_finished"] = await _call(session, "approve_deployment", run_id=run_id)
        out["still_alive"] = await _call(session, "list_runs")
        out["run_id"] = run_id
    return out


def test_mcp_stdio_end_to_end(workspace: Path, datasets: Path) -> None:
    out = asyncio.run(_scenario(workspace, datasets))
    assert out["tools"] == TOOLS
    _check_schemas(out)
    assert out["start_seconds"] < 10, "start_run must return at once, not after the run"
    assert out["started"]["status"] == "starting"
    assert out["status"]["status"] == "finished", out["status"]
    assert out["polls"][0] in ("starting", "running"), out["polls"]  # it was really polled
    assert all(out["status"]["gates"].values()) and len(out["status"]["gates"]) == 5

    findings = out["findings_all"]["findings"]
    assert {"data-analysis", "model-selection", "training", "metrics", "deployment", "status"} <= set(
        findings
    )
    metrics_file = json.loads((workspace / "runs" / out["run_id"] / "metrics.json").read_text())
    assert out["findings_metrics"]["findings"]["metrics"]["test_score"] == metrics_file["test_score"]
    assert out["missing_key"][0] is False and "no finding 'no-such-key'" in out["missing_key"][1]
    assert out["resource_gate"]["passed"] is True

    ok, predicted = out["predict"]
    assert ok, predicted
    assert len(predicted["predictions"]) == 5
    assert [int(p) for p in predicted["predictions"]] == [0, 0, 0, 0, 0]  # the first iris rows are setosa
    assert all(abs(sum(p) - 1) < 1e-5 for p in predicted["probabilities"])
    assert out["predict_bad_row"][0] is False and "schema" in out["predict_bad_row"][1]

    assert out["runs"]["runs"][0]["run_id"] == out["run_id"]
    assert [m["run_id"] for m in out["models"]["models"]] == [out["run_id"]]
    for name in ("bad_budget", "bad_run_id", "unknown_run", "missing_file", "approve_finished"):
        assert out[name][0] is False, (name, out[name])
    assert "not awaiting_approval" in out["approve_finished"][1]
    assert out["still_alive"][0] is True  # errors never crashed the server


def _undescribed(schema: dict[str, Any], where: str) -> list[str]:
    """Every property (also inside $defs) that has no description."""
    missing = [
        f"{where}.{name}"
        for name, prop in (schema.get("properties") or {}).items()
        if not prop.get("description")
    ]
    for def_name, sub in (schema.get("$defs") or {}).items():
        missing += _undescribed(sub, f"{where}.$defs.{def_name}") if sub.get("properties") else []
    return missing


def _check_schemas(out: dict[str, Any]) -> None:
    """Every tool: each parameter and each output field described, a typed output, read-only hints."""
    from ml_expert import __version__

    assert out["init"].server_info.version == __version__
    missing: list[str] = []
    for tool in out["tool_defs"]:
        assert tool.description, tool.name
        assert tool.output_schema and tool.output_schema.get("properties"), f"{tool.name}: no output schema"
        missing += _undescribed(tool.input_schema, f"{tool.name}.input")
        missing += _undescribed(tool.output_schema, f"{tool.name}.output")
        read_only = tool.annotations is not None and tool.annotations.read_only_hint is True
        assert read_only == (tool.name not in ("start_run", "approve_deployment")), tool.name
    assert not missing, f"fields without a description: {missing}"
    status = json.dumps(next(t for t in out["tool_defs"] if t.name == "get_status").output_schema)
    for value in ("awaiting_approval", "finished", "refused", "failed", "interrupted"):
        assert f'"{value}"' in status, value


def test_server_starts_without_heavy_imports(workspace: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ml_expert", "mcp", "--workspace", str(workspace)],
        stdin=subprocess.DEVNULL,  # end of input: the stdio server stops at once
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "mcp" in imported
    assert not imported & {"tensorflow", "keras", "sklearn", "langgraph", "torch", "jax"}
