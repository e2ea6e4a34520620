"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from api import metrics, models
from api.answers import Answer, respond
from api.dependencies import CachedV1, CurrentSnapshot, Feed
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
    summary="The broker answers, the snapshot is current and v1 serves rates",
    description="200 only when `GET /api/v1/courses` without parameters answers 200 and the "
    "broker and the pipeline are there; otherwise 503 with what is missing.",
    responses={503: {"model": Ready, "description": "not ready, with the reason"}},
)
async def readyz(snapshot: CurrentSnapshot, feed: Feed, v1: CachedV1) -> Response:
    answer = v1.get(b"")
    v1_error = None if answer.status == 200 else orjson.loads(answer.body)["detail"]
    state = readiness(snapshot, feed.broker_error, away=feed.away(), v1_error=v1_error)
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
