"""The language-model reviewer: one file in, a summary and inline comments out.

It speaks the OpenAI chat-completions API through ``langchain_openai.ChatOpenAI``, so any
OpenAI-compatible server works (OpenAI, Azure, vLLM, Ollama, LiteLLM, a test fake). What it
says lives in ``prompts``, how the answer is read in ``answer``, what a server error means in
``errors``; this module runs the exchange.

Choices, and why:

* **Structured output by function calling**, not ``json_schema``. ``json_schema`` sends a
  ``strict`` schema with ``$defs``/``$ref`` in ``response_format``; many OpenAI-compatible
  servers ignore ``response_format``, reject ``$ref`` or ``strict``, or (DeepSeek, Anthropic's
  compatibility layer, older vLLM/Ollama) do not support it at all. Forced tool calls with an
  inlined, non-strict schema are the most widely implemented way to get JSON back. A server
  that ignores ``tool_choice`` and answers JSON in the message text is handled too.
* **One repair turn** for an answer that is not the schema at all; if that fails too the file
  gets a summary-only result saying so. A bad answer about one file must never end the review.
* **Nothing secret leaves the process in a prompt.** Every message, the repair turn included,
  passes through ``redaction.redact_secrets`` with this process's own secrets (the API key and
  whatever ``known_secrets`` the caller gives, e.g. the GitHub token) right before it is sent,
  the same redaction logs and reports get. Memory refuses secrets too; this is the second wall.
* **A token budget per prompt** (``PromptBudget``), counted with tiktoken when its encoding is
  cached locally and estimated otherwise (``tokens``); the model server is never asked to
  count.
* **model_calls counts HTTP requests**, retries included, through an httpx request hook on the
  client: the openai SDK retries internally, so counting ``invoke`` calls would under-count
  what the server (and the bill) saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI

from review_agent.errors import BadInput
from review_agent.redaction import redact_known, redact_secrets, redact_url
from review_agent.reviewers.base import ReviewRequest, ReviewResult, WalkthroughRequest
from review_agent.reviewers.builtin.walkthrough import deterministic_walkthrough
from review_agent.reviewers.model.answer import (
    MalformedAnswer,
    payload_of,
    read_review,
    withhold_instructions,
)
from review_agent.reviewers.model.errors import ServerErrors, refused_prompt
from review_agent.reviewers.model.prompts import (
    DEFAULT_BUDGET,
    REPAIR_PROMPT,
    STRUCTURED_OUTPUT_METHOD,
    SYSTEM_PROMPT,
    PromptBudget,
    build_prompt,
    prompt_version,
)
from review_agent.reviewers.model.text import one_line
from review_agent.reviewers.model.tokens import token_counter
from review_agent.reviewers.model.walkthrough import (
    ModelWalkthrough,
    build_walkthrough_prompt,
    read_walkthrough,
)
from review_agent.state.schemas import ModelReview, Usage, Walkthrough

DEFAULT_OPENAI_URL = "https://api.openai.com/v1"

# -- counting HTTP requests ------------------------------------------------------------------


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


# One counter per review() call. A ContextVar rather than an attribute, because one reviewer
# may serve several files at once from different threads; langchain copies the context into
# the worker thread it invokes the model from, so the hook still sees the right counter.
_REQUESTS: ContextVar[_Counter | None] = ContextVar("review_agent_model_requests", default=None)


def _count_request(request: Any) -> None:
    """httpx request hook: runs once per HTTP attempt, retries included."""
    counter = _REQUESTS.get()
    if counter is not None:
        counter.n += 1


# -- the reviewer ----------------------------------------------------------------------------


@dataclass
class _Attempt:
    result: dict[str, Any]
    usage: Usage


class ModelReviewer:
    """Reviews one file with a chat model on any OpenAI-compatible server (the Reviewer port).

    ``api_key`` None with a ``base_url`` means a server that wants no key (a local vLLM or
    Ollama); the openai SDK insists on some key, so a placeholder is sent. ``timeout`` is per
    HTTP attempt; ``max_retries`` is the openai client's (connection errors, timeouts, 408,
    409, 429 honouring Retry-After, 5xx, with exponential backoff). ``known_secrets``: values
    this process holds besides the API key (the GitHub token) that no prompt may carry.
    ``budget``: tokens per prompt.
    """

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout: float = 120,
        max_retries: int = 4,
        temperature: float = 0,
        known_secrets: Iterable[str] = (),
        budget: PromptBudget = DEFAULT_BUDGET,
    ) -> None:
        self.name = f"openai:{model}"
        self.budget = budget
        self.prompt_version = prompt_version(budget)  # with ``name``, part of the reuse key
        self.count_tokens, self.exact_tokens = token_counter(model)
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self._http_client = openai.DefaultHttpxClient(event_hooks={"request": [_count_request]})
        key = api_key or ("not-needed" if base_url else None)
        try:
            self._llm = ChatOpenAI(
                model=model,
                api_key=key,  # type: ignore[arg-type]
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                temperature=temperature,
                http_client=self._http_client,
                # Generic servers speak chat completions only; langchain would switch some
                # model names to the Responses API on its own.
                use_responses_api=False if base_url else None,
            )
        except openai.OpenAIError as exc:  # no key anywhere
            self._http_client.close()
            raise BadInput(
                "no API key for the model server: set OPENAI_API_KEY (or OPENAI_BASE_URL for "
                "a server that needs none)"
            ) from exc
        secret = self._llm.openai_api_key
        held = (api_key, secret.get_secret_value() if secret else None, *known_secrets)
        self._secrets = [s for s in held if s]
        self.base_url = redact_url(str(self._llm.root_client.base_url or DEFAULT_OPENAI_URL)).rstrip("/")
        self._errors = ServerErrors(self.base_url, model, timeout, self._scrub)
        self._structured = self._llm.with_structured_output(
            ModelReview, method=STRUCTURED_OUTPUT_METHOD, include_raw=True
        )
        self._walkthrough = self._llm.with_structured_output(
            ModelWalkthrough, method=STRUCTURED_OUTPUT_METHOD, include_raw=True
        )

    def close(self) -> None:
        """Close the HTTP connection pool: the reviewer owns it (it carries the request hook),
        so nobody else will."""
        self._http_client.close()

    def __enter__(self) -> ModelReviewer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def review(self, request: ReviewRequest) -> ReviewResult:
        if not request.patch.numbered.strip():
            return ReviewResult(summary="No textual changes to review.", comments=[])
        counter = _Counter()
        token = _REQUESTS.set(counter)
        try:
            return self._review(request, counter)
        finally:
            _REQUESTS.reset(token)

    def write_walkthrough(self, request: WalkthroughRequest) -> Walkthrough:
        """One model call over the per-file summaries and findings (``walkthrough``). An answer
        that cannot be used, or a prompt the server refuses, gives the deterministic
        walkthrough with a note: the review never fails for its walkthrough."""
        if not request.files:
            return deterministic_walkthrough(request, writer=self.name)
        counter = _Counter()
        token = _REQUESTS.set(counter)
        try:
            messages = build_walkthrough_prompt(request, count=self.count_tokens, redact=self._redact)
            attempt = self._ask(messages, counter, self._walkthrough)
            usage = attempt.usage if attempt is not None else Usage()
            note = "the model server refused the walkthrough prompt: counts and top findings instead"
            if attempt is not None:
                try:
                    written = read_walkthrough(payload_of(attempt.result), request, self._redact)
                    return written.model_copy(
                        update={"writer": self.name, "model_calls": counter.n, "usage": usage}
                    )
                except MalformedAnswer as exc:
                    note = (
                        f"the model's walkthrough could not be read ({self._redact(str(exc))[:200]}): "
                        "counts and top findings instead"
                    )
            fallback = deterministic_walkthrough(request, writer=self.name, note=note)
            return fallback.model_copy(update={"model_calls": counter.n, "usage": usage})
        finally:
            _REQUESTS.reset(token)

    def _review(self, request: ReviewRequest, counter: _Counter) -> ReviewResult:
        messages = build_prompt(
            request, budget=self.budget, count=self.count_tokens, redact=self._redact
        ).messages
        usage = Usage()
        problem = ""
        for turn in range(2):  # the answer, then at most one repair
            attempt = self._ask(messages, counter)
            if attempt is None:  # the server refused this file's prompt (too long, filtered)
                return ReviewResult(
                    summary=(
                        f"The model server refused to review {request.path}: the diff is too "
                        "large for the model's context or was filtered. Review it by hand."
                    ),
                    comments=[],
                    model_calls=counter.n,
                    usage=usage,
                    failed="the model server refused the prompt (too large for its context, or filtered)",
                )
            usage = Usage(
                input_tokens=usage.input_tokens + attempt.usage.input_tokens,
                output_tokens=usage.output_tokens + attempt.usage.output_tokens,
            )
            try:
                summary, comments = read_review(payload_of(attempt.result), request.patch, self._redact)
                # the fixed instructions only: preferences and learnings are the user's own words,
                # and a finding may rightly quote them
                summary, comments = withhold_instructions(summary, comments, SYSTEM_PROMPT)
            except MalformedAnswer as exc:
                problem = str(exc)
                if turn == 0:
                    repair = REPAIR_PROMPT.format(problem=problem)
                    messages = [
                        *messages,
                        HumanMessage(f"FILE: {one_line(request.path)}\n{repair}"),
                    ]
                continue
            return ReviewResult(summary=summary, comments=comments, model_calls=counter.n, usage=usage)
        return ReviewResult(
            summary=(
                f"The model's answer for {request.path} could not be parsed, even after one "
                f"retry ({self._redact(problem)[:300]}); this file has no model review."
            ),
            comments=[],
            model_calls=counter.n,
            usage=usage,
            failed=f"the model's answer could not be parsed ({self._redact(problem)[:200]})",
        )

    def _ask(self, messages: list[BaseMessage], counter: _Counter, structured: Any = None) -> _Attempt | None:
        """One model exchange (with the client's retries). None: the server refused this
        prompt itself, which another file's prompt would not trigger."""
        # the last wall before the network: whatever a message holds, redacted
        # (our messages are plain text; ``text`` joins the text parts of any other content)
        messages = [m.model_copy(update={"content": self._redact(str(m.text))}) for m in messages]
        try:
            result = (structured or self._structured).invoke(messages)
        except openai.APIError as exc:
            if refused_prompt(exc):
                return None
            raise self._errors.translate(exc, counter.n) from (
                None if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) else exc
            )
        raw = result.get("raw") if isinstance(result, dict) else None
        meta = getattr(raw, "usage_metadata", None) or {}
        usage = Usage(
            input_tokens=int(meta.get("input_tokens") or 0),
            output_tokens=int(meta.get("output_tokens") or 0),
        )
        return _Attempt(result=result if isinstance(result, dict) else {}, usage=usage)

    def _scrub(self, text: str) -> str:
        return redact_known(text, self._secrets)

    def _redact(self, text: str) -> str:
        return redact_secrets(text, self._secrets)
