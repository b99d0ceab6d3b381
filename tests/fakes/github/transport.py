"""The fake GitHub on the wire: the HTTP server and its lifecycle, authentication (tokens,
App JWTs, installation tokens), the primary rate limit, dispatch to the routes with scripted
faults applied, and the unauthenticated control API for a standalone server."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.fakes.github.configure import ConfigureMixin
from tests.fakes.github.faults import FaultsMixin
from tests.fakes.github.state import (
    API_PREFIX,
    PRIMARY_RATE_LIMIT_MESSAGE,
    Json,
    RecordedRequest,
    _Context,
    _HTTPError,
    _Principal,
    _Response,
)


class TransportMixin(FaultsMixin, ConfigureMixin):
    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (a free port unless one was given) and serve in a daemon thread."""
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = _QuietServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits for the loop to see the shutdown, up to one poll: 10 ms, not 50, per
            # test that starts a fake
            kwargs={"poll_interval": 0.01},
            daemon=True,
            name=f"fake-github-{server.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- request handling (called from the server threads) ----------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command.upper()
        split = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(split.path)
        route = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        route = route.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            payload: Json = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")

        if route.startswith("/_fake/"):
            self._control(handler, method, route, payload)
            return

        who = self._authenticate(handler.headers.get("Authorization"))
        login, token_state = who.login, who.state
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(method, path, route, query, headers, payload, login)
        with self._lock:
            self._requests.append(record)
            fault = next((f for f in self._faults if f.matches(method, route)), None)
            if fault is not None:
                fault.used += 1

        if fault is not None and fault.delay:
            time.sleep(fault.delay)

        ctx = _Context(method, route, query, payload, login, who.can_write, who.app_id, who.installation)
        # a fault replaces the answer; the request itself is applied only if it "lands"
        applied = fault is None or fault.land or (fault.status is None and not fault.disconnect)
        response = self._dispatch(ctx, token_state) if applied else None

        if fault is not None and fault.disconnect:
            record.fault = True
            handler.close_connection = True
            return
        if fault is not None and fault.status is not None:
            record.fault = True
            response = _Response(fault.status, fault.body, dict(fault.headers))
        assert response is not None
        record.status = response.status
        self._send(handler, response)

    def _authenticate(self, header: str | None) -> _Principal:
        if not header:
            return _Principal()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() not in ("token", "bearer") or not token:
            return _Principal(state="bad")
        with self._lock:
            found = self._tokens.get(token)
            minted = self._installation_tokens.get(token)
        if found is not None:
            return _Principal(found[0], found[1], "ok")
        if minted is not None:
            installation_id, expires = minted
            if time.time() >= expires:
                return _Principal(state="bad")
            inst = self._installations[installation_id]
            app = self._apps[inst.app_id]
            return _Principal(app.bot, inst.can_write, "ok", installation=installation_id)
        if token.count(".") == 2:
            app_id = self._verify_jwt(token)
            if app_id is None:
                return _Principal(state="bad_jwt")
            return _Principal(None, False, "ok", app_id=app_id)
        return _Principal(state="bad")

    def _verify_jwt(self, token: str) -> str | None:
        """The App a JWT authenticates, as GitHub checks it: RS256, signed by the App's key,
        ``iss`` the App id, issued in the past and expiring within ten minutes."""
        import jwt  # PyJWT: a dependency of PyGithub

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            with self._lock:
                app = self._apps.get(str(claims.get("iss")))
            if app is None:
                return None
            checked = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=5,
            )
        except jwt.PyJWTError:
            return None
        if int(checked["exp"]) - int(checked["iat"]) > 11 * 60 or int(checked["exp"]) > time.time() + 11 * 60:
            return None
        return app.app_id

    def _dispatch(self, ctx: _Context, token_state: str) -> _Response:
        try:
            if token_state == "bad":
                raise _HTTPError(401, "Bad credentials")
            if token_state == "bad_jwt":
                raise _HTTPError(401, "A JSON web token could not be decoded")
            app_route = (
                ctx.route == "/app"
                or ctx.route.startswith("/app/")
                or re.fullmatch(r"/repos/[^/]+/[^/]+/installation", ctx.route) is not None
            )
            if app_route and ctx.app_id is None:
                raise _HTTPError(401, "A JSON web token could not be decoded")
            if ctx.app_id is not None and not app_route:
                raise _HTTPError(403, "Resource not accessible by integration")
            if ctx.route != "/rate_limit" and token_state == "ok":
                self._count_rate_limit()
            for method, pattern, fn in self._routes:
                if method != ctx.method:
                    continue
                m = pattern.fullmatch(ctx.route)
                if m:
                    response = fn(ctx, **m.groupdict())
                    break
            else:
                raise _HTTPError(404, "Not Found")
        except _HTTPError as e:
            response = _Response(e.status, e.body, e.headers)
        response.headers.update(self._rate_headers())
        return response

    def _count_rate_limit(self) -> None:
        with self._lock:
            if time.time() >= self._rate_reset:
                self._rate_remaining = self._rate_limit
                self._rate_reset = int(time.time()) + 3600
            if self._rate_remaining <= 0:
                raise _HTTPError(403, PRIMARY_RATE_LIMIT_MESSAGE)
            self._rate_remaining -= 1

    def _rate_headers(self) -> dict[str, str]:
        with self._lock:
            return {
                "x-ratelimit-limit": str(self._rate_limit),
                "x-ratelimit-remaining": str(max(self._rate_remaining, 0)),
                "x-ratelimit-used": str(self._rate_limit - max(self._rate_remaining, 0)),
                "x-ratelimit-reset": str(self._rate_reset),
                "x-ratelimit-resource": "core",
            }

    def _send(self, handler: BaseHTTPRequestHandler, response: _Response) -> None:
        data = b"" if response.body is None else json.dumps(response.body).encode()
        handler.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data and handler.command != "HEAD":
            handler.wfile.write(data)

    # ---- control API for standalone use --------------------------------------------------

    def _control(self, handler: BaseHTTPRequestHandler, method: str, route: str, payload: Json) -> None:
        """Unauthenticated, unrecorded endpoints that let another process script and inspect
        a standalone server: GET /_fake/requests, GET /_fake/prs/OWNER/REPO/N,
        POST /_fake/faults (fail_next's keyword arguments), POST /_fake/reset_requests."""
        try:
            if method == "GET" and route == "/_fake/requests":
                body: Json = [r.__dict__ for r in self.requests]
            elif method == "GET" and (m := re.fullmatch(r"/_fake/prs/([^/]+)/([^/]+)/(\d+)", route)):
                o, r, n = m.group(1), m.group(2), int(m.group(3))
                body = {
                    "reviews": self.reviews(o, r, n),
                    "review_comments": self.review_comments(o, r, n),
                    "issue_comments": self.issue_comments(o, r, n),
                }
            elif method == "POST" and route == "/_fake/faults":
                args = dict(payload or {})
                self.fail_next(args.pop("method"), args.pop("path"), **args)
                body = {"ok": True}
            elif method == "POST" and route == "/_fake/reset_requests":
                self.reset_requests()
                body = {"ok": True}
            else:
                raise _HTTPError(404, "Not Found")
            self._send(handler, _Response(200, body))
        except KeyError:
            self._send(handler, _Response(404, {"message": "Not Found"}))
        except _HTTPError as e:
            self._send(handler, _Response(e.status, e.body))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a killed process, a timeout) is normal here, not an error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_handler(fake: TransportMixin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API; every answer has a length
        server_version = "FakeGitHub/1.0"
        timeout = 60  # idle keep-alive connections do not hold a thread forever
        # buffer writes so headers and body leave in one segment: written separately, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every request
        wbufsize = 64 * 1024

        def _any(self) -> None:
            try:
                fake._handle(self)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the record is fake.requests; stderr noise would only hide test output

    return Handler
