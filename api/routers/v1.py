"""Version 1: ``GET /api/v1/courses`` in its original shape.

At run time the edge (api/edge.py) answers this route itself, with the same function; the
route here documents it and serves it when the fast path is off.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api import models
from api.answers import respond
from api.dependencies import CachedV1
from api.models import CoursesV1, ErrorBody
from api.params import Exchanger, IfNoneMatch, V1Directions

router = APIRouter(prefix="/api/v1", tags=["v1"], responses=models.INVALID)


@router.get(
    "/courses",
    response_model=CoursesV1,
    summary="Latest rates of one venue",
    description=(
        "The latest fresh rate of each direction at one venue. Without `exchanger`, the "
        "active venue chosen by the failover policy; directions it has no fresh rate for "
        "are left out."
    ),
    responses={
        200: {"headers": models.CACHE_HEADERS},
        304: {"description": "unchanged since the ETag in If-None-Match"},
        422: {
            "model": ErrorBody,
            "description": "unknown exchanger or direction; the message lists the valid values",
            "content": {"application/json": {"examples": models.V1_422}},
        },
        503: {
            "model": ErrorBody,
            "description": "no data yet; without `exchanger`, before the failover policy "
            "chose the active venue at start (it waits to hear from every enabled venue, or "
            "RATES_WARMUP_S, so the first 200 is from the preferred venue); or the venue has no "
            "fresh rate for these directions",
            "headers": models.RETRY_AFTER,
            "content": {"application/json": {"examples": models.V1_503}},
        },
    },
)
async def courses(
    request: Request,
    v1: CachedV1,
    exchanger: Exchanger = None,
    direction: V1Directions = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    # Declared for the OpenAPI document; parsed from the raw query string exactly as the
    # fast path parses it (api/edge.py), so the two cannot differ.
    del exchanger, direction
    return respond(v1.get(request.scope["query_string"]), if_none_match)
