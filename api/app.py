"""The ASGI application: FastAPI with its routers, behind the edge (api/edge.py).

``create_app`` builds everything a process serves once: the snapshot the feed keeps
current, the v1 answers rendered from it, the history pool, and the typed state the routes
receive (api/dependencies.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from api import metrics
from api.answers import Answer, ApiError, respond
from api.dependencies import ApiState, attach, state_of
from api.edge import ASGIApp, FastPath, HeaderLimit, Metrics
from api.feed import FeedState, follow
from api.history import History
from api.render.v1 import V1Answers
from api.routers import health, v1, v2
from api.settings import ApiSettings
from api.snapshot import Snapshot
from common.clock import utcnow

TAGS = [
    {"name": "v1", "description": "The original contract, unchanged."},
    {"name": "v2", "description": "Provenance, venues, live stream and history."},
    {"name": "health", "description": "Liveness, readiness and metrics."},
]


async def _api_error(request: Request, exc: Exception) -> Response:
    """Any route's ApiError: the error answer it names."""
    assert isinstance(exc, ApiError)
    return respond(Answer.error(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's own validation errors, in the same shape as every other error."""
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
        for err in exc.errors()
    )
    return respond(Answer.error(ApiError(422, problems)))


def _lifespan(
    follow_kafka: bool,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The feed (with ``follow_kafka``) and the history pool, for the app's lifetime."""
        state = state_of(app)
        task = None
        if follow_kafka:
            task = asyncio.create_task(follow(state.settings, state.snapshot, state.feed))
        await state.history.open()
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
            await state.history.close()
            metrics.process_exited()

    return lifespan


def _fastapi(state: ApiState, follow_kafka: bool) -> FastAPI:
    settings = state.settings
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
            f"Exchangers: {', '.join(state.snapshot.exchangers)}."
        ),
        version="2",
        lifespan=_lifespan(follow_kafka),
        openapi_tags=TAGS,
    )
    attach(api, state)
    api.include_router(v1.router)
    api.include_router(v2.router)
    api.include_router(health.router)
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(RequestValidationError, _invalid)
    return api


def create_app(
    settings: ApiSettings,
    *,
    follow_kafka: bool = True,
    snapshot: Snapshot | None = None,
    now: Callable[[], datetime] = utcnow,
) -> ASGIApp:
    """The API; with ``follow_kafka`` the lifespan keeps the snapshot fed from the topics."""
    snapshot = snapshot or Snapshot(settings.rates_directions)
    feed = FeedState(snapshot.clock)
    state = ApiState(
        settings=settings,
        snapshot=snapshot,
        v1=V1Answers(
            snapshot, settings.api_max_silence_s, feed.away, settings.api_broker_away_max_s
        ),
        feed=feed,
        history=History(settings.database_url),
        now=now,
    )
    api = _fastapi(state, follow_kafka)
    app: ASGIApp = FastPath(api, state.v1) if settings.api_fast_path else api
    if settings.api_cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET"],
            allow_headers=["Last-Event-ID", "If-None-Match"],
            expose_headers=["ETag", "Retry-After"],
            max_age=600,
        )
    return Metrics(HeaderLimit(app))
