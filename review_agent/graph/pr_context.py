"""The pull request's context of one review: built once, by the plan step, and read by every
file's review.

What every file's prompt carries besides its own diff (the title and description, the changed
files, the cross-file references; ``reviewers.context``) is the same for all the files of a
review, and on GitHub building it reads each changed code file once. So it is built once per
review and written to the results store next to the plan: a resumed process reads it there
instead of building it again, and every file of one review sees the same context (a PR whose
description is edited mid-review keeps the one it was planned with). A review planned before
the context existed, or forked from one, builds it on first use.

The texts read to build it are read a few at a time (the review's concurrency), and kept for the
file reviews that follow in the same process (each file's prompt needs its text again), within a
bound, so a file is read once, not twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from review_agent.reviewers.context import PRContext, build_pr_context
from review_agent.reviewers.symbols import is_python, lexer_for
from review_agent.sources.base import ChangedFile

if TYPE_CHECKING:
    from review_agent.graph.ports import GraphPorts

CONTENT_CACHE_BYTES = 32 * 1024 * 1024


class ContentCache:
    """Texts read while building the context, each taken once by its file's review; at most
    ``limit`` characters held (beyond it a text is simply read again)."""

    def __init__(self, limit: int = CONTENT_CACHE_BYTES) -> None:
        self.limit = limit
        self._held: dict[str, str | None] = {}
        self._size = 0
        self._lock = threading.Lock()

    def put(self, path: str, text: str | None) -> None:
        size = len(text or "")
        with self._lock:
            if path in self._held or self._size + size > self.limit:
                return
            self._held[path] = text
            self._size += size

    def take(self, path: str) -> tuple[bool, str | None]:
        """(found, text); a text is handed out once, then forgotten."""
        with self._lock:
            if path not in self._held:
                return False, None
            text = self._held.pop(path)
            self._size -= len(text or "")
            return True, text


def is_code(path: str) -> bool:
    """Whether a file's text can give cross-file references (Python, or a Pygments code lexer)."""
    return is_python(path) or lexer_for(path) is not None


class ReviewContext:
    """The PR context of the graph's review, and the texts read to build it."""

    def __init__(self, ports: GraphPorts) -> None:
        self.ports = ports
        self.contents = ContentCache()
        self._context: PRContext | None = None
        self._lock = threading.RLock()  # held while a missing context is built: built once

    def build(self, files: Iterable[ChangedFile], planned: Iterable[str]) -> PRContext:
        """Build the context from the change's files (the texts of the planned code files are
        read once, ``concurrency`` at a time, a window ahead of their use) and save it; called
        by the plan step."""
        ports = self.ports
        files = list(files)
        wanted = {p for p in planned if is_code(p)}
        order = [f.path for f in files if f.path in wanted and f.status != "removed"]
        width = max(1, ports.concurrency)
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="context") as pool:
            ahead: dict[str, Future[str | None]] = {}
            queue = iter(order)

            def top_up() -> None:
                for path in queue:
                    ahead[path] = pool.submit(ports.source.get_content, path)
                    if len(ahead) >= width * 2:
                        return

            def contents(path: str) -> str | None:
                if path not in wanted:
                    return None
                top_up()
                future = ahead.pop(path, None)
                text = future.result() if future is not None else ports.source.get_content(path)
                self.contents.put(path, text)
                return text

            try:
                context = build_pr_context(ports.target.title, ports.target.description, files, contents)
            finally:
                for future in ahead.values():
                    future.cancel()
        ports.results.put_pr_context(ports.thread_id, context.to_dict())
        with self._lock:
            self._context = context
        return context

    def get(self) -> PRContext:
        """The saved context (built now if this review has none: planned before it existed, or
        a fork of one)."""
        with self._lock:
            if self._context is not None:
                return self._context
            saved = self.ports.results.get_pr_context(self.ports.thread_id)
            if saved is not None:
                self._context = PRContext.from_dict(saved)
                return self._context
            plan = self.ports.results.get_plan(self.ports.thread_id)[0]
            return self.build(self.ports.source.list_files(), [e["path"] for e in plan])

    def content(self, path: str) -> str | None:
        """The file's text at head: the one read for the context, else from the source."""
        found, text = self.contents.take(path)
        return text if found else self.ports.source.get_content(path)
