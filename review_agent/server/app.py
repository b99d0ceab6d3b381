"""The ASGI app: ``POST /webhook``, ``GET /healthz``, ``GET /metrics`` (Starlette, run by uvicorn).

Order of work on a delivery, and why:

1. the raw body is read (refused above GitHub's 25 MB cap) and its ``X-Hub-Signature-256``
   checked before anything parses it: an unsigned, wrongly signed or stale delivery gets 401
   and touches nothing; with no GITHUB_WEBHOOK_SECRET configured every delivery is refused;
2. the event is routed by a pure function (``events.route``);
3. one transaction records the delivery id and defers the job (``enqueue``);
4. the answer (202 queued, 200 otherwise) leaves well inside GitHub's 10 s: no GitHub call, no
   model call, no review work happens here.

The process keeps nothing but its metrics: any number of copies can serve the same App.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from review_agent.config import Settings
from review_agent.server.enqueue import record_and_enqueue
from review_agent.server.events import parse_associations, repository_of, route
from review_agent.server.metrics import Metrics, read_fleet
from review_agent.server.signature import signature_ok

log = logging.getLogger(__name__)
MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


def create_app(settings: Settings, queue: procrastinate.App) -> Starlette:
    secret = (
        settings.github_webhook_secret.get_secret_value().encode() if settings.github_webhook_secret else None
    )
    associations = parse_associations(settings.command_associations)
    metrics = Metrics()
    if secret is None:
        log.warning("GITHUB_WEBHOOK_SECRET is not set: every delivery is refused (401)")

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        event = request.headers.get("x-github-event", "")
        try:
            response = await _handle(request, event)
        finally:
            metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _handle(request: Request, event: str) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return _count(event, "too_large", JSONResponse({"error": "payload too large"}, 413))
        body = await request.body()
        if len(body) > MAX_BODY:
            return _count(event, "too_large", JSONResponse({"error": "payload too large"}, 413))
        if not signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
            return _count(event, "unauthorized", JSONResponse({"error": "bad signature"}, 401))
        delivery_id = request.headers.get("x-github-delivery", "").strip()
        if not delivery_id or len(delivery_id) > 200 or not event:
            return _count(event, "bad_request", JSONResponse({"error": "missing delivery id or event"}, 400))
        try:
            payload = json.loads(body)
        except ValueError:
            return _count(event, "bad_request", JSONResponse({"error": "body is not JSON"}, 400))
        if not isinstance(payload, dict):
            return _count(event, "bad_request", JSONResponse({"error": "body is not a JSON object"}, 400))
        action = route(event, payload, delivery_id, associations)
        try:
            outcome = await record_and_enqueue(
                queue,
                delivery_id,
                event,
                payload.get("action"),
                repository_of(payload),
                action,
                synchronous_commit=settings.webhook_synchronous_commit,
            )
        except Exception as exc:  # the database is down or refused: GitHub (or an operator) redelivers
            log.warning("delivery %s not recorded: %s", delivery_id, type(exc).__name__)
            return _count(event, "error", JSONResponse({"error": "queue unavailable, redeliver later"}, 503))
        status = 202 if outcome.status == "queued" else 200
        body_out: dict[str, Any] = {"status": outcome.status, "detail": outcome.detail}
        if outcome.job_id is not None:
            body_out["job_id"] = outcome.job_id
        return _count(event, outcome.status, JSONResponse(body_out, status))

    def _count(event: str, outcome: str, response: Response) -> Response:
        metrics.deliveries.labels(event=event[:40] or "none", outcome=outcome).inc()
        return response

    async def healthz(request: Request) -> Response:
        try:
            async with queue.connector.pool.connection(timeout=2) as conn:  # type: ignore[attr-defined]
                await conn.execute("SELECT 1")
        except Exception:
            return JSONResponse({"status": "degraded", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok", "webhook_secret": secret is not None})

    async def metrics_endpoint(request: Request) -> Response:
        with contextlib.suppress(Exception):  # the process's own figures are served regardless
            async with queue.connector.pool.connection(timeout=2) as conn:  # type: ignore[attr-defined]
                metrics.fleet.update(*await read_fleet(conn))
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with queue.open_async():
            yield

    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve(settings: Settings, host: str, port: int) -> None:
    """Create the queue schema if needed, then serve until SIGINT/SIGTERM."""
    import uvicorn

    from review_agent.errors import BadInput
    from review_agent.worker.queue import make_app
    from review_agent.worker.schema import ensure_app_schema

    url = settings.database_url
    if not url or not url.startswith(("postgres://", "postgresql://")):
        raise BadInput("`serve` needs DATABASE_URL=postgresql://… (the queue lives in Postgres)")
    ensure_app_schema(url)
    queue = make_app(url, settings.db_pool_size)
    uvicorn.run(
        create_app(settings, queue),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
