"""The StateGraph: five phases by three agents, a gate before every transition."""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from ml_expert.agents.ml_developer import data_preparation, deployment, training
from ml_expert.agents.registrar import register
from ml_expert.agents.researcher import model_selection
from ml_expert.agents.tester import validation
from ml_expert.graph.approval import after_approval, approval
from ml_expert.graph.gates import should_retry_training
from ml_expert.graph.lifecycle import finish_run, init_run, make_gate_node
from ml_expert.graph.state import MLInput, MLOutput, MLState
from ml_expert.graph.verdict import GateVerdict

# (phase node, gate after it, node the gate opens)
PIPELINE = (
    ("data_preparation", "data", "model_selection"),
    ("model_selection", "plan", "training"),
    ("training", "training", "validation"),
    ("validation", "validation", "approval"),
    ("deployment", "release", "register"),
)
PHASES = {
    "data_preparation": data_preparation,
    "model_selection": model_selection,
    "training": training,
    "validation": validation,
    "deployment": deployment,
}


def _router(gate: str, opens: str):
    def route(
        state: MLState,
    ) -> Literal["model_selection", "training", "validation", "approval", "deployment", "register", "finish"]:
        verdict = GateVerdict.of(state, gate)
        if verdict is not None and verdict.passed:
            return opens  # type: ignore[return-value]
        if gate == "training" and should_retry_training(state):
            return "training"  # divergence: retrain with a lower learning rate (bounded retries)
        return "finish"

    route.__name__ = f"after_{gate}_gate"
    return route


def build_graph(checkpointer=None):
    """The compiled graph. Without a checkpointer it inherits its parent's when used as a node."""
    builder = StateGraph(MLState, input_schema=MLInput, output_schema=MLOutput)
    builder.add_node("init", init_run)
    builder.add_node("finish", finish_run)
    builder.add_edge(START, "init")
    builder.add_edge("init", "data_preparation")
    for phase, gate, opens in PIPELINE:
        builder.add_node(phase, PHASES[phase])
        builder.add_node(f"gate_{gate}", make_gate_node(gate))
        builder.add_edge(phase, f"gate_{gate}")
        builder.add_conditional_edges(f"gate_{gate}", _router(gate, opens))
    builder.add_node("approval", approval)  # pauses only when options.require_approval
    builder.add_conditional_edges("approval", after_approval)
    builder.add_node("register", register)
    builder.add_edge("register", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="ml-expert")
