"""The nodes that open and close a run, and the node that runs a gate."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer

from ml_expert.agents.context import memory_for
from ml_expert.config import RunConfig
from ml_expert.execution import close_executors
from ml_expert.graph.gates import GATES
from ml_expert.graph.outputs import run_artifacts, run_metrics
from ml_expert.memory import FindingsRecorder, claude_flow_run
from ml_expert.memory.summary import build_summary
from ml_expert.runs import RunFile, RunStatus
from ml_expert.tools.environment import hardware, package_versions
from ml_expert.workspace import new_run_id, reserve_space, run_dir


def init_run(state: dict[str, Any]) -> dict[str, Any]:
    given = dict(state.get("options") or {})
    # A parent graph may pass `data` / `target` as its own top-level keys (see MLInput).
    if isinstance(state.get("data"), str | Path):
        given["data"] = str(state["data"])
    if state.get("target"):
        given["target"] = state["target"]
    config = RunConfig.build(**given)  # every default and check, once
    options = config.options()
    run_id = state.get("run_id") or new_run_id()
    path = run_dir(Path(config.workspace), run_id)
    path.mkdir(parents=True, exist_ok=True)
    reserve_space(path)  # so that a full disk later can still record why the run stopped
    RunFile(path).start(
        run_id,
        RunStatus.RUNNING,
        "init",
        pid=os.getpid(),
        config=options,
        manifest={
            "seed": config.seed,
            "package_versions": package_versions(),
            "hardware": hardware(),
        },
    )
    claude_flow_run.begin(path, run_id, config, task_description(config))
    return {
        "options": options,
        "run_id": run_id,
        "run_dir": str(path),
        "status": RunStatus.RUNNING.value,
        "phase": "init",
        "data": {},  # the phases' channel from here on; the caller's path now lives in options
    }


def task_description(config: RunConfig) -> str:
    """How the run is named to claude-flow's hooks (its router learns which words mean ml-expert)."""
    return f"train, validate and package a machine-learning model on {config.data or 'the demo data'}"


def make_gate_node(name: str):
    check = GATES[name]

    def gate(state: dict[str, Any]) -> dict[str, Any]:
        verdict = check(state)
        payload = verdict.model_dump()
        FindingsRecorder(memory_for(RunConfig.of(state)), Path(state["run_dir"]), state["run_id"]).record(
            f"guardrails/{name}", payload
        )
        RunFile(state["run_dir"]).record_gate(name, payload)
        with contextlib.suppress(Exception):
            get_stream_writer()(
                {"event": "gate", "gate": name, "passed": verdict.passed, "failed": verdict.failed}
            )
        update: dict[str, Any] = {"gates": {name: payload}}
        if not verdict.passed:
            update["status"] = RunStatus.REFUSED.value
            update["reason"] = f"{name} gate refused: " + "; ".join(verdict.failed)
        return update

    gate.__name__ = f"gate_{name}"
    return gate


def finish_run(state: dict[str, Any]) -> dict[str, Any]:
    status = RunStatus.REFUSED if state.get("status") == RunStatus.REFUSED else RunStatus.FINISHED
    close_executors()  # the fits are over: disconnect, stop a local cluster this run started
    path = Path(state["run_dir"])
    RunFile(path).end(status, state.get("reason"), state.get("phase"))
    config = RunConfig.of(state)
    recorder = FindingsRecorder(memory_for(config), path, state["run_id"])
    recorder.record(
        "status", {"status": status.value, "reason": state.get("reason"), "phase": state.get("phase")}
    )
    findings = {
        key: json.loads(file.read_text(encoding="utf-8")) for key, file in recorder.findings().items()
    }
    summary = build_summary(state["run_id"], findings)
    recorder.record("summary", summary.model_dump())
    findings["summary"] = summary.model_dump()
    claude_flow_run.finish(
        path,
        state["run_id"],
        config,
        findings,
        success=status == RunStatus.FINISHED,
        score=summary.test_score,
        description=task_description(config),
    )
    out = {**state, "status": status.value}
    return {"status": status.value, "metrics": run_metrics(out), "artifacts": run_artifacts(out)}
