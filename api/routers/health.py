"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import metrics, models
from api.answers import Answer, respond
from api.dependencies import CurrentSnapshot, Feed
from api.models import Health, Ready
from api.readiness import readiness

router = APIRouter(tags=["health"], responses=models.INVALID)

HEALTHY = Answer.make(200, b'{"status":"ok"}')


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Response:
    return respond(HEALTHY)


@router.get(
    "/readyz",
    response_model=Ready,
    summary="The broker answers, the snapshot is loaded and current",
    responses={503: {"model": Ready, "description": "not ready, with the reason"}},
)
async def readyz(snapshot: CurrentSnapshot, feed: Feed) -> Response:
    state = readiness(snapshot, feed.broker_error)
    body = Ready(ready=state.ready, reason=state.reason).model_dump_json().encode()
    return respond(Answer.make(200 if state.ready else 503, body, (b"cache-control", b"no-store")))


@router.get(
    "/metrics",
    summary="Prometheus metrics of every API process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus(snapshot: CurrentSnapshot) -> Response:
    age = snapshot.age_s()
    metrics.SNAPSHOT_AGE.set(-1 if age is None else age)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
