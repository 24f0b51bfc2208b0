"""Module-level compiled graph for `langgraph.json` (LangGraph server / Studio supply persistence)."""

from ml_expert.graph.builder import build_graph

graph = build_graph()
