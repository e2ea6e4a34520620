"""Version 1: ``GET /api/v1/courses`` in its original shape.

At run time the edge (api/app.py) answers this route itself, with the same function; the
route here documents it and serves it when the fast path is off.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api import models
from api.models import CoursesV1, ErrorBody
from api.responses import respond
from api.routers.params import IfNoneMatch
from api.snapshot import answer_v1

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
            "description": "no data yet, or the venue has no fresh rate for these directions",
            "headers": models.RETRY_AFTER,
            "content": {"application/json": {"examples": models.V1_503}},
        },
    },
)
async def courses(
    request: Request,
    exchanger: Annotated[
        str | None,
        Query(description=models.EXCHANGER_DOC, examples=["binance"]),
    ] = None,
    direction: Annotated[
        list[str] | None,
        Query(
            description="directions to return, repeatable (`direction=BTC-USD&direction="
            "ETH-USD`) or comma-separated (`direction=BTC-USD,ETH-USD`), case-insensitive; "
            "duplicates collapse; answered in the order asked. Default: every configured "
            "direction, in the configured order",
            examples=["BTC-USD,ETH-USD"],
        ),
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    snapshot = request.app.state.snapshot
    answer = snapshot.vouch(answer_v1(snapshot, exchanger, direction or []))
    return respond(answer, if_none_match)
