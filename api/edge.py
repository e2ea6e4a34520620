"""The thin ASGI edge in front of FastAPI: request metrics, and v1 answered without FastAPI.

``GET /api/v1/courses`` is the hot path. :class:`FastPath` answers it from the cache of
rendered v1 answers (one dict lookup on the raw query string) without entering FastAPI;
the FastAPI route stays declared, for the OpenAPI document and as the same answer's slow
path (``API_FAST_PATH=false``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from api import metrics
from api.answers import matches
from api.render.v1 import V1Answers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

V1_PATH = "/api/v1/courses"
#: Request header bytes (names and values) accepted; beyond: 431 (nginx's default buffers
#: hold 4 x 8 KB; no client of a rates API needs more).
MAX_HEADER_BYTES = 16 * 1024


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
    """Answers ``GET /api/v1/courses`` from the v1 cache; passes everything else on."""

    def __init__(self, app: ASGIApp, answers: V1Answers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != V1_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = V1_ROUTE  # the metrics label, as FastAPI would set it
        answer = self.answers.get(scope["query_string"])
        if answer.etag is not None and matches(
            answer.etag, _request_header(scope, b"if-none-match")
        ):
            answer = answer.not_modified()
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})


#: Paths FastAPI serves outside its API routes (so without a route template in the scope):
#: the OpenAPI document, and the docs pages' files.
PLAIN_ROUTES = ("/openapi.json",)
MOUNTS = ("/static-offline-docs",)


def route_of(scope: Scope) -> str:
    """The metrics label of a request: its route template, or ``unmatched`` (bounded)."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", metrics.UNMATCHED))
    path = scope.get("path", "")
    if path in PLAIN_ROUTES:
        return str(path)
    return next((m for m in MOUNTS if path.startswith(m + "/")), metrics.UNMATCHED)


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
                self._count(route_of(scope), message["status"], time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, counted)


class HeaderLimit:
    """Answers 431 to a request whose headers exceed MAX_HEADER_BYTES (uvicorn sets none)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                body = b'{"detail":"request headers too large"}'
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": 431, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
