"""Finished per-file reviews, kept in the LangGraph store rather than in the graph state.

Why not in the state: a channel holding every review would be re-serialised at every later
superstep (195 KB a step at 200 files: docs/architecture.md, "Pitfalls"). Here each review is
written once, under its thread, the moment the file is finished — before the checkpoint of that
step — so a process killed between the two finds the review on rerun and does not ask the model
again.

Three namespaces (the plan of a thread is kept here too, written once by its plan step):
- ``("reviews", <thread digest>)``, key = file path: the reviews of one thread;
- ``("plans", <thread digest>)``, key ``plan``: the files to review and those skipped; key
  ``pr_context``: the pull request's context every file's prompt carries, built once by the
  plan step (on GitHub it costs a content call per code file, so a resumed process reads it
  here); key ``walkthrough``: the walkthrough, written once after the files;
- ``("review_cache",)``, key = reuse key: the same review, found by a later push of the same PR
  when the file, its diff, the reviewer and the preferences are unchanged.
Store labels may not contain dots, so thread ids are digested (stable, never ``hash()``).
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from review_agent.state.identity import stable_digest
from review_agent.state.schemas import FileReview, Walkthrough

PAGE = 500


def _ns(thread_id: str) -> tuple[str, ...]:
    return ("reviews", stable_digest(thread_id))


CACHE_NS = ("review_cache",)


def _plan_ns(thread_id: str) -> tuple[str, ...]:
    return ("plans", stable_digest(thread_id))


class ReviewResults:
    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def get(self, thread_id: str, path: str) -> FileReview | None:
        item = self.store.get(_ns(thread_id), path)
        return FileReview.model_validate(item.value) if item else None

    def put(self, thread_id: str, review: FileReview) -> None:
        self.store.put(_ns(thread_id), review.path, review.model_dump(mode="json"), index=False)

    def list(self, thread_id: str) -> dict[str, FileReview]:
        out: dict[str, FileReview] = {}
        offset = 0
        while True:
            items = self.store.search(_ns(thread_id), limit=PAGE, offset=offset)
            for item in items:
                out[item.key] = FileReview.model_validate(item.value)
            if len(items) < PAGE:
                return out
            offset += PAGE

    def count(self, thread_id: str) -> int:
        return len(self.list(thread_id))

    def delete_thread(self, thread_id: str) -> None:
        for path in list(self.list(thread_id)):
            self.store.delete(_ns(thread_id), path)
        for key in ("plan", "pr_context", "walkthrough"):
            self.store.delete(_plan_ns(thread_id), key)

    def put_plan(self, thread_id: str, plan: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> None:
        self.store.put(_plan_ns(thread_id), "plan", {"files": plan, "skipped": skipped}, index=False)

    def get_plan(self, thread_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(files to review, skipped files), as the plan step of this thread wrote them."""
        item = self.store.get(_plan_ns(thread_id), "plan")
        if item is None:
            return [], []
        return list(item.value.get("files", [])), list(item.value.get("skipped", []))

    def put_pr_context(self, thread_id: str, context: dict[str, Any]) -> None:
        """The pull request's context (``PRContext.to_dict()``), as the plan step built it."""
        self.store.put(_plan_ns(thread_id), "pr_context", context, index=False)

    def get_pr_context(self, thread_id: str) -> dict[str, Any] | None:
        item = self.store.get(_plan_ns(thread_id), "pr_context")
        return dict(item.value) if item is not None else None

    def put_walkthrough(self, thread_id: str, walkthrough: Walkthrough) -> None:
        self.store.put(_plan_ns(thread_id), "walkthrough", walkthrough.model_dump(mode="json"), index=False)

    def get_walkthrough(self, thread_id: str) -> Walkthrough | None:
        item = self.store.get(_plan_ns(thread_id), "walkthrough")
        return Walkthrough.model_validate(item.value) if item is not None else None

    def get_cached(self, key: str) -> FileReview | None:
        item = self.store.get(CACHE_NS, key)
        return FileReview.model_validate(item.value) if item else None

    def put_cached(self, key: str, review: FileReview) -> None:
        value: dict[str, Any] = review.model_dump(mode="json")
        self.store.put(CACHE_NS, key, value, index=False)
