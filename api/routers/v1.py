"""Version 1: ``GET /api/v1/courses`` in its original shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.errors import error_response
from api.models import CoursesV1, ErrorBody
from api.snapshot import ApiError, courses_v1, parse_directions, parse_exchanger

router = APIRouter(prefix="/api/v1", tags=["v1"])


@router.get(
    "/courses",
    response_model=CoursesV1,
    summary="Latest rates of one venue",
    responses={
        422: {"model": ErrorBody, "description": "unknown exchanger or direction"},
        503: {
            "model": ErrorBody,
            "description": "the venue has no fresh data yet (see Retry-After)",
        },
    },
)
async def courses(
    request: Request,
    exchanger: Annotated[
        str | None,
        Query(
            description="venue name, case-insensitive; default: the active venue "
            "chosen by the failover policy",
            examples=["binance"],
        ),
    ] = None,
    direction: Annotated[
        list[str] | None,
        Query(
            description="directions to return, repeatable or comma-separated, "
            "case-insensitive; default: every configured direction",
            examples=["BTC-USD,ETH-USD"],
        ),
    ] = None,
) -> Response:
    state = request.app.state
    try:
        venue = parse_exchanger(exchanger)
        wanted = parse_directions(direction, state.settings.rates_directions)
        body = courses_v1(state.snapshot, venue, wanted)
    except ApiError as exc:
        return error_response(exc)
    return Response(content=body, media_type="application/json")
