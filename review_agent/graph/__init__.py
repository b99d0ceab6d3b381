"""The LangGraph workflow. I/O only through injected ports (sources, reviewers, results store)."""

from review_agent.graph.build import build_graph
from review_agent.graph.ports import GraphPorts

__all__ = ["GraphPorts", "build_graph"]
