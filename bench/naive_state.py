"""The naive state of the checkpoint benchmark: what a stock agent keeps in its graph state.

Every file's prompt and answer go into ``messages`` and its comments into ``comments``, and both
stay in the state for the whole walk, so every superstep rewrites them (docs/architecture.md,
"Pitfalls"). `bench.checkpoint` walks it beside our own state to show the difference.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from bench.common import InstantReviewer, SyntheticSource
from review_agent.patches import parse_patch
from review_agent.reviewers.base import ReviewRequest
from review_agent.state.schemas import FileReview


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class NaiveState(TypedDict, total=False):
    files: list[str]
    cursor: int
    messages: Annotated[list[AnyMessage], add_messages]
    comments: Annotated[dict[str, Any], _merge]


def build_naive_graph(source: SyntheticSource, reviewer: InstantReviewer, checkpointer: Any):
    """What a stock agent does: the prompt and the answer of every file go into `messages`, every
    file's comments into `comments`, and both stay in the state for the whole walk."""

    def plan(state: NaiveState) -> dict[str, Any]:
        return {"files": [f.path for f in source.list_files()], "cursor": 0}

    def review(state: NaiveState) -> dict[str, Any]:
        path = state["files"][state["cursor"]]
        changed = source.get_file(path)
        assert changed is not None and changed.patch is not None
        parsed = parse_patch(path, changed.patch)
        outcome = reviewer.review(ReviewRequest(path=path, patch=parsed, content=source.get_content(path)))
        answer = FileReview(path=path, summary=outcome.summary, comments=outcome.comments)
        return {
            "messages": [
                HumanMessage(content=f"FILE: {path}\n{parsed.numbered}"),
                AIMessage(content=answer.model_dump_json(include={"summary", "comments"})),
            ],
            "comments": {path: [c.model_dump(mode="json") for c in outcome.comments]},
        }

    def collect(state: NaiveState) -> dict[str, Any]:
        return {"cursor": state["cursor"] + 1}

    def route(state: NaiveState) -> str:
        return "review" if state["cursor"] < len(state["files"]) else END

    g = StateGraph(NaiveState)
    g.add_node("plan", plan)
    g.add_node("review", review)
    g.add_node("collect", collect)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", route, ["review", END])
    g.add_edge("review", "collect")
    g.add_conditional_edges("collect", route, ["review", END])
    return g.compile(checkpointer=checkpointer)
