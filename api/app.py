"""The ASGI application: FastAPI behind a thin edge that counts requests and answers v1 fast.

``GET /api/v1/courses`` is the hot path. The edge answers it from the snapshot's cache of
rendered bodies (one dict lookup on the raw query string) without entering FastAPI; the
FastAPI route stays declared, for the OpenAPI document and as the same answer's slow path
(``API_FAST_PATH=false``). Everything else goes through FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from api import metrics
from api.feed import FeedState, follow
from api.history import History
from api.responses import respond
from api.routers import health, v1, v2
from api.settings import ApiSettings
from api.snapshot import Answer, ApiError, Snapshot, matches
from common.clock import utcnow

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

V1_PATH = "/api/v1/courses"


@dataclass(frozen=True)
class RouteLabel:
    path: str


V1_ROUTE = RouteLabel(V1_PATH)


def _request_header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class FastPath:
    """Answers ``GET /api/v1/courses`` from the snapshot; passes everything else on."""

    def __init__(self, app: FastAPI, snapshot: Snapshot) -> None:
        self.app = app
        self.snapshot = snapshot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != V1_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = V1_ROUTE  # the metrics label, as FastAPI would set it
        answer = self.snapshot.v1(scope["query_string"])
        if answer.etag is not None and matches(
            answer.etag, _request_header(scope, b"if-none-match")
        ):
            answer = answer.not_modified()
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})


class Metrics:
    """Counts every HTTP request by route template and status, and times it to its headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _count(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = (
                metrics.REQUESTS.labels(route, str(status)),
                metrics.LATENCY.labels(route),
            )
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", metrics.UNMATCHED)
                self._count(route, message["status"], time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, counted)


def create_app(
    settings: ApiSettings,
    *,
    follow_kafka: bool = True,
    snapshot: Snapshot | None = None,
    now: Callable[[], datetime] = utcnow,
) -> ASGIApp:
    """The API; with ``follow_kafka`` the lifespan keeps the snapshot fed from the topics."""
    snapshot = snapshot or Snapshot(
        settings.rates_directions, max_silence_s=settings.api_max_silence_s
    )
    feed = FeedState()
    history = History(settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(follow(settings, snapshot, feed)) if follow_kafka else None
        await history.open()
        # A full collection over the ~80k objects of the imported libraries takes ~20 ms, a
        # request stalled that long: set them aside, so collections only see new objects.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await history.close()
            metrics.process_exited()

    # Swagger UI and ReDoc from files in the package, not a CDN: /docs works offline too.
    api = FastAPIOffline(
        title="currency-pairs",
        summary="Live crypto exchange rates with venue failover",
        description=(
            "Rates are served from memory: each API process follows the `rates.latest` "
            "topic. Values are JSON numbers printed with the venue's own digits. Every "
            'error answers `{"detail": "..."}`; 503s carry `Retry-After`. Successful '
            "answers carry an `ETag` and `Cache-Control: max-age=1`.\n\n"
            f"Directions served: {', '.join(settings.rates_directions)}. "
            f"Exchangers: {', '.join(snapshot.exchangers)}."
        ),
        version="2",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "v1", "description": "The original contract, unchanged."},
            {"name": "v2", "description": "Provenance, venues, live stream and history."},
            {"name": "health", "description": "Liveness, readiness and metrics."},
        ],
    )
    api.state.settings = settings
    api.state.snapshot = snapshot
    api.state.feed = feed
    api.state.history = history
    api.state.now = now
    api.include_router(v1.router)
    api.include_router(v2.router)
    api.include_router(health.router)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
            for err in exc.errors()
        )
        return respond(Answer.error(ApiError(422, problems)))

    app: ASGIApp = FastPath(api, snapshot) if settings.api_fast_path else api
    if settings.api_cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET"],
            allow_headers=["Last-Event-ID", "If-None-Match"],
            expose_headers=["ETag", "Retry-After"],
            max_age=600,
        )
    return Metrics(app)
