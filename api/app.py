"""The FastAPI application: routers, the rates.latest feed, request metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import metrics
from api.feed import follow
from api.routers import health, v1
from api.settings import ApiSettings
from api.snapshot import Snapshot


def create_app(settings: ApiSettings, *, follow_kafka: bool = True) -> FastAPI:
    """The API; with ``follow_kafka`` the lifespan keeps the snapshot fed from rates.latest."""
    snapshot = Snapshot()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(follow(settings, snapshot)) if follow_kafka else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="currency-pairs",
        summary="Live crypto exchange rates with venue failover",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.snapshot = snapshot
    app.include_router(v1.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(path, str(response.status_code)).inc()
        metrics.LATENCY.labels(path).observe(time.perf_counter() - started)
        return response

    return app
