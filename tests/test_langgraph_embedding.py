"""The compiled ml-expert graph inside a larger LangGraph workflow.

As a node: the parent's state shares only the narrow input (data, target, options) and output
(run_id, status, metrics, artifacts) keys; its own `operator.add` list is not duplicated. As a
wrapper node: the parent calls `invoke` and returns only what it needs.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ml_expert import build_graph

REPO = Path(__file__).resolve().parents[1]


class Parent(TypedDict, total=False):
    data: str
    target: str
    options: dict[str, Any]
    run_id: str
    status: str
    metrics: dict[str, Any]
    artifacts: dict[str, str]
    log: Annotated[list[str], operator.add]
    verdict: str


def _prepare(state: Parent) -> dict[str, Any]:
    return {"log": ["prepare"]}


def _report(state: Parent) -> dict[str, Any]:
    return {"log": ["report"], "verdict": f"{state['status']}: accuracy {state['metrics']['accuracy']:.3f}"}


def _options(workspace: Path, seed: int) -> dict[str, Any]:
    return {"workspace": str(workspace), "budget": 60, "train_dnn": False, "seed": seed}


def test_graph_as_a_node_of_a_parent(workspace: Path) -> None:
    parent = StateGraph(Parent)
    parent.add_node("prepare", _prepare)
    parent.add_node("ml_expert", build_graph())
    parent.add_node("report", _report)
    parent.add_edge(START, "prepare")
    parent.add_edge("prepare", "ml_expert")
    parent.add_edge("ml_expert", "report")
    parent.add_edge("report", END)
    out = parent.compile().invoke({"data": "iris", "target": "target", "options": _options(workspace, 11)})

    assert out["log"] == ["prepare", "report"]  # no duplicated entries
    assert out["status"] == "finished"
    assert out["metrics"]["accuracy"] > 0.5 and out["verdict"].startswith("finished: accuracy")
    assert out["data"] == "iris"  # the parent's key is not overwritten by the subgraph's internals
    assert set(out) <= set(Parent.__annotations__)
    metrics_file = json.loads(Path(out["artifacts"]["metrics"]).read_text())
    assert metrics_file["test"]["accuracy"] == out["metrics"]["accuracy"]
    assert Path(out["artifacts"]["deployment"], "manifest.json").exists()
    assert Path(out["artifacts"]["run_dir"]).name == out["run_id"]


def test_graph_inside_a_wrapper_node(workspace: Path) -> None:
    graph = build_graph()

    def train(state: Parent) -> dict[str, Any]:
        result = graph.invoke({"data": state["data"], "options": _options(workspace, 12)})
        return {"metrics": result["metrics"], "status": result["status"], "log": ["train"]}

    parent = StateGraph(Parent)
    parent.add_node("prepare", _prepare)
    parent.add_node("train", train)
    parent.add_node("report", _report)
    parent.add_edge(START, "prepare")
    parent.add_edge("prepare", "train")
    parent.add_edge("train", "report")
    parent.add_edge("report", END)
    out = parent.compile().invoke({"data": "iris", "log": ["start"]})
    assert out["log"] == ["start", "prepare", "train", "report"]
    assert out["status"] == "finished" and out["metrics"]["accuracy"] > 0.5


def test_schemas_and_langgraph_json() -> None:
    graph = build_graph()
    assert set(graph.get_input_jsonschema()["properties"]) == {"data", "target", "options", "run_id"}
    assert set(graph.get_output_jsonschema()["properties"]) == {
        "run_id",
        "run_dir",
        "status",
        "reason",
        "metrics",
        "artifacts",
    }
    spec = json.loads((REPO / "langgraph.json").read_text())
    file, _, attr = spec["graphs"]["ml_expert"].partition(":")
    assert (REPO / file).resolve() == REPO / "ml_expert" / "graph" / "app.py" and attr == "graph"
    from ml_expert.graph import app

    assert type(app.graph).__name__ == "CompiledStateGraph"
