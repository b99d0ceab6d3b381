"""The LangGraph workflow. I/O only through injected ports (sources, reviewers, the store)."""

from review_agent.graph.build import GraphPorts, build_graph

__all__ = ["GraphPorts", "build_graph"]
