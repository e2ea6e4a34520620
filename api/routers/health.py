"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import metrics
from api.models import Health, Ready
from api.snapshot import readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    summary="The snapshot is loaded and current",
    responses={503: {"model": Ready, "description": "not ready, with the reason"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = readiness(request.app.state.snapshot)
    return JSONResponse(
        {"ready": state.ready, "reason": state.reason}, status_code=200 if state.ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    age = request.app.state.snapshot.age_s()
    metrics.SNAPSHOT_AGE.set(-1 if age is None else age)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
