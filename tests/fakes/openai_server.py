"""A fake OpenAI-compatible API for tests (docs/architecture.md, "Testing": the network
boundary is the only double).

The real ``langchain-openai`` client (and the real ``openai`` SDK under it) talks HTTP to this
server on 127.0.0.1, so retries, timeouts, Retry-After handling and structured-output parsing
are the client's own code paths, not something a mock pretends to do.

Why it answers the way it does:

* A request is attributed to a file by the ``FILE: <path>`` line of the user message (the
  reviewer's prompt contract), so tests and crash tests can count model calls *per file*.
* The default answer comments on the first added line of the numbered diff (``   12 +text``),
  which is always a line GitHub can anchor, so end-to-end tests see a comment on every file
  that has an added line.
* Both structured-output styles are served: ``tools`` / ``tool_choice`` (function calling)
  gets a ``tool_calls`` answer, anything else (``response_format`` json_schema / json_object,
  or plain chat) gets the JSON as message content.
* The walkthrough request (one per review, after the files) is recognised by its
  ``WALKTHROUGH:`` line and attributed to the path :data:`WALKTHROUGH` (script it, count it with
  ``calls_for(WALKTHROUGH)``); its default answer describes every listed file, names the first
  three listed findings as risks and estimates the effort.
* Faults are scripted per path or globally as a FIFO queue of :class:`Behaviour`; when a
  queue is empty the default answer is given. That lets a test say "two 500s, then succeed"
  for one file while the others are reviewed normally.

Run standalone for manual tries or for a CLI under test in another process::

    python -m tests.fakes.openai_server --port 8911 --delay 0.2

``GET /_fake/calls`` then reports what it saw (JSON), since another process cannot read
:attr:`FakeOpenAI.calls`.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple

FILE_LINE = re.compile(r"^FILE: (.+?)\s*$", re.MULTILINE)
WALKTHROUGH_LINE = re.compile(r"^WALKTHROUGH: ", re.MULTILINE)
WALKTHROUGH = "(walkthrough)"  # the "path" of the walkthrough request
LISTED_FILE = re.compile(r"^## (.+) \(\+\d+ -\d+, [^)]*\)$", re.MULTILINE)
LISTED_FINDING = re.compile(r"^\[(F\d+)\] ", re.MULTILINE)
ADDED_LINE = re.compile(r"^\s*(\d+) \+", re.MULTILINE)
DEFAULT_MODELS = ("fake-model", "gpt-4o-mini")
MALFORMED_JSON = '{"summary": "I started answering but then'  # truncated: not valid JSON


class Call(NamedTuple):
    """One request to /v1/chat/completions, as seen by the server (recorded before any fault)."""

    path: str | None
    model: str | None
    messages: list[dict[str, Any]]
    timestamp: float


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one request. Build with the class methods, which say intent.

    ``status`` other than 200 answers an OpenAI-style error (with ``Retry-After`` when given);
    ``hang`` sleeps that many seconds before answering (longer than the client's timeout makes
    the client give up; the server is released at :meth:`FakeOpenAI.stop`); ``malformed``
    answers invalid JSON; ``answer`` answers that object (any JSON, so schema mismatches can be
    scripted too) instead of the default; ``as_content`` answers in the message text even when
    the request asked for a tool call, as servers that ignore ``tool_choice`` do; ``raw`` answers
    that exact text in the message (not JSON-encoded), as a model that ignores the schema does.
    """

    status: int = 200
    retry_after: float | None = None
    message: str | None = None
    code: str | None = None
    answer: Any = None
    malformed: bool = False
    hang: float = 0.0
    as_content: bool = False
    raw: str | None = None

    @classmethod
    def error(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> Behaviour:
        return cls(status=status, retry_after=retry_after, message=message, code=code)

    @classmethod
    def reply(cls, answer: Any) -> Behaviour:
        return cls(answer=answer)

    @classmethod
    def text_reply(cls, answer: Any = None) -> Behaviour:
        return cls(answer=answer, as_content=True)

    @classmethod
    def raw_reply(cls, text: str) -> Behaviour:
        return cls(raw=text, as_content=True)

    @classmethod
    def bad_json(cls) -> Behaviour:
        return cls(malformed=True)

    @classmethod
    def hang_for(cls, seconds: float) -> Behaviour:
        return cls(hang=seconds)


def _text_of(content: Any) -> str:
    """Message content is a string or a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def path_of(messages: list[dict[str, Any]]) -> str | None:
    """The file a request is about: the first ``FILE:`` line of the latest user message that
    has one (a repair turn appended after the original prompt may or may not repeat it), or
    :data:`WALKTHROUGH` for the walkthrough request."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        text = _text_of(message.get("content"))
        if WALKTHROUGH_LINE.search(text):
            return WALKTHROUGH
        match = FILE_LINE.search(text)
        if match:
            return match.group(1)
    return None


def default_answer(path: str | None, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One warning on the first added line of the diff, or none when nothing was added. The
    diff is looked for in the latest user message that shows one, so a follow-up turn (a
    repair request) is answered about the same diff, as a real model would."""
    shown = path or "the file"
    answer: dict[str, Any] = {"summary": f"Reviewed {shown}.", "comments": []}
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        match = ADDED_LINE.search(_text_of(message.get("content")))
        if match:
            line = int(match.group(1))
            answer["comments"].append(
                {
                    "line": line,
                    "side": "RIGHT",
                    "severity": "warning",
                    "body": f"Fake finding on {shown} line {line}",
                }
            )
            break
    return answer


def walkthrough_answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The walkthrough as a model would write it from the listed reviews: an overview, the
    first three listed findings as risks, a line per listed file, an effort estimate."""
    text = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user")
    paths = LISTED_FILE.findall(text)
    findings = LISTED_FINDING.findall(text)
    return {
        "overview": (
            f"This pull request changes {len(paths)} files. "
            f"The reviews found {len(findings)} findings worth a look."
        ),
        "risks": [
            {"finding": f, "why": f"Finding {f} may break the callers of this code."} for f in findings[:3]
        ],
        "changes": [{"path": p, "change": f"Updates {p}."} for p in paths],
        "effort": min(5, 1 + len(paths) // 5),
    }


def _tokens(text: str) -> int:
    """About four characters a token, like real tokenizers on English and code."""
    return max(1, len(text) // 4)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must never keep pytest from exiting
    allow_reuse_address = True
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai SDK's connection pool expects
    # headers and body go out in two writes: without TCP_NODELAY the body waits ~40 ms for the
    # client's delayed ACK on every answer (measured by bench/review.py)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) and closed the socket
            self.close_connection = True

    def _error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        err_type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        self._send_json(status, body, headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        fake = self.server.fake
        route = self.path.split("?", 1)[0].rstrip("/")
        if route == "/v1/models":
            if not self._authorised():
                return
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in fake.models or DEFAULT_MODELS
            ]
            self._send_json(200, {"object": "list", "data": data})
        elif route == "/_fake/calls":
            self._send_json(200, fake.snapshot())
        else:
            self._error(404, f"Unknown route {route}", code="not_found")

    def do_POST(self) -> None:
        fake = self.server.fake
        route = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if route == "/v1/embeddings":
            self._embeddings(raw)
            return
        if route != "/v1/chat/completions":
            self._error(404, f"Unknown route {route}", code="not_found")
            return
        try:
            body = json.loads(raw or b"{}")
            messages = body.get("messages") or []
            if not isinstance(messages, list):
                raise ValueError("messages must be a list")
        except (ValueError, AttributeError) as exc:
            self._error(400, f"Invalid JSON body: {exc}")
            return
        path = path_of(messages)
        fake._record(Call(path, body.get("model"), messages, time.time()), body)
        if not self._authorised():
            return
        model = body.get("model")
        if fake.models is not None and model not in fake.models:
            self._error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
            return
        if body.get("stream"):
            self._error(400, "The fake server does not stream.", code="unsupported")
            return
        behaviour = fake._next_behaviour(path)
        if fake.delay > 0:
            fake._stopping.wait(fake.delay)
        if behaviour.hang > 0:
            fake._stopping.wait(behaviour.hang)
        if behaviour.status != 200:
            self._scripted_error(behaviour)
            return
        self._answer(body, path, messages, behaviour)

    def _embeddings(self, raw: bytes) -> None:
        """Deterministic embeddings (the project's local hashing embedding at the asked size),
        so that semantic search over learnings behaves the same through the OpenAI client."""
        from review_agent.storage.embeddings import HashingEmbeddings

        if not self._authorised():
            return
        body = json.loads(raw or b"{}")
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        emb = HashingEmbeddings(int(body.get("dimensions") or 1536))
        self.server.fake.embedding_calls += 1
        data = [
            {"object": "embedding", "index": i, "embedding": emb.embed_query(str(t))}
            for i, t in enumerate(texts)
        ]
        tokens = sum(_tokens(str(t)) for t in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- answers ---------------------------------------------------------------------------
    def _authorised(self) -> bool:
        expected = self.server.fake.require_api_key
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        token = given[len("Bearer ") :] if given.startswith("Bearer ") else given
        if token == expected:
            return True
        # Echo the key given, in full, on purpose: real servers echo part of it, and the
        # client must never let what a server says about the key reach a user-facing message.
        self._error(
            401,
            f"Incorrect API key provided: {token}. You can find your API key in your account.",
            code="invalid_api_key",
        )
        return False

    def _scripted_error(self, behaviour: Behaviour) -> None:
        status = behaviour.status
        headers: dict[str, str] = {}
        if behaviour.retry_after is not None:
            headers["Retry-After"] = f"{behaviour.retry_after:g}"
        defaults = {
            401: ("Incorrect API key provided.", "invalid_api_key", "invalid_request_error"),
            403: ("You are not allowed to use this model.", "forbidden", "invalid_request_error"),
            404: ("The model does not exist.", "model_not_found", "invalid_request_error"),
            429: ("Rate limit reached; retry later.", "rate_limit_exceeded", "requests"),
        }
        message, code, err_type = defaults.get(
            status, (f"The server had an error ({status}).", None, "server_error")
        )
        self._error(
            status,
            behaviour.message or message,
            code=behaviour.code or code,
            err_type=err_type,
            headers=headers,
        )

    def _answer(
        self, body: dict[str, Any], path: str | None, messages: list[dict[str, Any]], b: Behaviour
    ) -> None:
        if b.malformed:
            text = MALFORMED_JSON
        elif b.raw is not None:
            text = b.raw
        elif b.answer is not None:
            text = json.dumps(b.answer)
        elif path == WALKTHROUGH:
            text = json.dumps(walkthrough_answer(messages))
        else:
            text = json.dumps(default_answer(path, messages))
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        tools = body.get("tools") or []
        if tools and not b.as_content:
            name = None
            choice = body.get("tool_choice")
            if isinstance(choice, dict):
                name = (choice.get("function") or {}).get("name")
            if not name:
                name = (tools[0].get("function") or {}).get("name", "answer")
            fake = self.server.fake
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{fake.total_calls}",
                    "type": "function",
                    "function": {"name": name, "arguments": text},
                }
            ]
            finish = "tool_calls"
        prompt_tokens = sum(_tokens(_text_of(m.get("content"))) for m in messages) + 3 * len(messages)
        completion_tokens = _tokens(text)
        payload = {
            "id": f"chatcmpl-fake-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self._send_json(200, payload)


class FakeOpenAI:
    """A fake OpenAI-compatible server on 127.0.0.1, served from a background thread.

    Use as a context manager (``with FakeOpenAI() as fake: ... fake.base_url``) or call
    :meth:`start` / :meth:`stop`. All knobs may be changed while it runs; all recorded state is
    guarded by one lock because the server answers each connection in its own thread.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        delay: float = 0.0,
        require_api_key: str | None = None,
        models: Iterable[str] | None = None,
    ) -> None:
        self.port = port
        self.delay = delay  # seconds before every answer; read per request, so settable live
        self.embedding_calls = 0  # requests to /v1/embeddings (not counted as model calls)
        self.require_api_key = require_api_key
        self.models: frozenset[str] | None = frozenset(models) if models is not None else None
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._bodies: list[dict[str, Any]] = []
        self._scripts: dict[str | None, deque[Behaviour]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        # stop() waits for the loop to see the shutdown, up to one poll: 10 ms, not 50, per test
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release any handler that is hanging or delaying."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to give the client as its base URL (``OPENAI_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *behaviours: Behaviour, path: str | None = None) -> None:
        """Queue behaviours for the next requests about ``path`` (or any request, if None).
        A path's own queue is used first, then the global queue, then the default answer."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(behaviours)

    def pending(self, path: str | None = None) -> int:
        """How many scripted behaviours are still queued for ``path`` (None: the global queue)."""
        with self._lock:
            return len(self._scripts.get(path, ()))

    def reset(self) -> None:
        """Forget recorded calls and queued behaviours (knobs stay as they are)."""
        with self._lock:
            self._calls.clear()
            self._bodies.clear()
            self._scripts.clear()

    def _next_behaviour(self, path: str | None) -> Behaviour:
        with self._lock:
            for key in (path, None) if path is not None else (None,):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return Behaviour()

    # -- recording ---------------------------------------------------------------------------
    def _record(self, call: Call, body: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)
            self._bodies.append(body)

    @property
    def calls(self) -> list[Call]:
        """Every chat-completions request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The full JSON bodies of those requests (tools, response_format, temperature, ...)."""
        with self._lock:
            return list(self._bodies)

    def calls_for(self, path: str) -> int:
        with self._lock:
            return sum(1 for c in self._calls if c.path == path)

    @property
    def total_calls(self) -> int:
        with self._lock:
            return len(self._calls)

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_fake/calls`` returns: counts and call metadata, without message text."""
        with self._lock:
            by_path: dict[str, int] = {}
            for c in self._calls:
                key = c.path if c.path is not None else ""
                by_path[key] = by_path.get(key, 0) + 1
            return {
                "total": len(self._calls),
                "by_path": by_path,
                "calls": [{"path": c.path, "model": c.model, "timestamp": c.timestamp} for c in self._calls],
            }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible API.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--require-api-key", default=None)
    parser.add_argument("--model", action="append", dest="models", help="known model (repeat)")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        port=args.port, delay=args.delay, require_api_key=args.require_api_key, models=args.models
    )
    fake.start()
    print(fake.base_url, flush=True)  # the parent process reads the URL from the first line
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not done.wait(0.5):
        pass
    fake.stop()


if __name__ == "__main__":
    main()
