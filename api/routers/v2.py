"""Version 2: courses with their provenance, a live stream of changes, venues, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import models
from api.history import DEFAULT_LIMIT, MAX_LIMIT, Resolution, make_query
from api.models import CoursesV2, HistoryBars, HistoryPage, VenuesV2
from api.responses import respond
from api.routers.params import Directions, IfNoneMatch
from api.snapshot import Answer, ApiError, parse_directions
from api.stream import course_events
from api.v2 import courses_v2, venues_v2

router = APIRouter(prefix="/api/v2", tags=["v2"], responses=models.INVALID)

UNKNOWN_DIRECTION = models.error(
    "unknown direction; the message lists the valid ones",
    direction="unknown direction BTC-EUR; valid directions: BTC-USD, ETH-USD, ...",
)
NOT_MODIFIED = {"description": "unchanged since the ETag in If-None-Match"}


@router.get(
    "/courses",
    response_model=CoursesV2,
    summary="Every direction's rate with its venue, age and alternatives",
    responses={
        200: {"headers": models.CACHE_HEADERS},
        304: NOT_MODIFIED,
        422: UNKNOWN_DIRECTION,
        503: models.unavailable(
            "nothing has arrived from rates.latest yet",
            no_data="no rates yet: nothing has arrived from rates.latest",
        ),
    },
)
async def courses(
    request: Request, direction: Directions = None, if_none_match: IfNoneMatch = None
) -> Response:
    state = request.app.state
    try:
        wanted = parse_directions(direction, state.snapshot.directions)
        answer = Answer.ok(courses_v2(state.snapshot, wanted, state.now()))
    except ApiError as exc:
        answer = Answer.error(exc)
    return respond(answer, if_none_match)


#: One event of the stream (OpenAPI before 3.2 describes an event stream event by event).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "time of the change, ms since the epoch"},
        "event": {"type": "string", "enum": ["active", "course"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "JSON: for `course`, one item of `GET /api/v2/courses`; "
            "for `active`, its `active` object",
        },
        "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"},
    },
}
SSE_EXAMPLE = (
    "retry: 1000\n\n"
    'id: 1795540478408\nevent: active\ndata: {"venue":"binance","reason":"preferred venue",'
    '"since":"2026-11-24T16:00:00.000000Z"}\n\n'
    'id: 1795540478517\nevent: course\ndata: {"direction":"BTC-USD","venue":"binance",'
    '"value":54000.000123,...}\n\n'
    ": keep-alive\n\n"
)


@router.get(
    "/courses/stream",
    summary="Server-sent events: every change of a rate or of the active venue",
    description=(
        "First the current state (`event: active`, then one `event: course` per direction, "
        "with the data of `GET /api/v2/courses`), then every change as it arrives. Each "
        "event's `id` is the time of the change in ms; a client that reconnects with "
        "`Last-Event-ID` (browsers do it by themselves) receives only what changed since. "
        "A comment line every 15 s keeps idle connections open; a stream ends after "
        "`API_STREAM_MAX_S` and the client reconnects."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "an endless text/event-stream",
            "content": {"text/event-stream": {"schema": SSE_EVENT, "example": SSE_EXAMPLE}},
        },
        422: UNKNOWN_DIRECTION,
    },
)
async def stream(
    request: Request,
    direction: Directions = None,
    last_event_id: Annotated[
        str | None,
        Header(
            description="the id of the last event received: resume after it",
            examples=["1795540478517"],
        ),
    ] = None,
) -> Response:
    state = request.app.state
    try:
        wanted = parse_directions(direction, state.snapshot.directions)
    except ApiError as exc:
        return respond(Answer.error(exc))
    events = course_events(
        state.snapshot,
        wanted,
        last_event_id,
        state.settings.api_stream_max_s,
        state.now,
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/venues",
    response_model=VenuesV2,
    summary="Each venue's connection state, last frame age and the directions it serves",
    responses={200: {"headers": models.CACHE_HEADERS}, 304: NOT_MODIFIED},
)
async def venues(request: Request, if_none_match: IfNoneMatch = None) -> Response:
    state = request.app.state
    body = venues_v2(state.snapshot, state.settings.rates_venues, state.now())
    return respond(Answer.ok(body), if_none_match)


@router.get(
    "/courses/history",
    response_model=HistoryPage | HistoryBars,
    summary="Stored quotes of one direction, or their 1-minute bars, oldest first, in pages",
    description=(
        "`resolution=raw` (the default): every quote of every venue stored for the direction "
        "with `since <= ts < until`, ordered by venue time (kept "
        "`RATES_HISTORY_RETENTION_DAYS`). `resolution=1m`: per minute and venue, the open, "
        "high, low and close of those quotes and their count, for the minutes starting in "
        "`[since, until)` (kept `RATES_HISTORY_ROLLUP_RETENTION_DAYS`). Follow `next_cursor` "
        "for the next page. Read from PostgreSQL; when it is away this endpoint answers 503 "
        "and the others keep serving."
    ),
    responses={
        200: {"headers": models.CACHE_HEADERS},
        304: NOT_MODIFIED,
        422: models.error(
            "bad direction, time, limit, cursor or resolution",
            since="since='yesterday' is not an RFC 3339 time with an offset, "
            "e.g. 2026-11-24T16:00:00Z",
            cursor="cursor is not one this API returned: pass next_cursor unchanged",
            resolution="resolution: Input should be 'raw' or '1m'",
        ),
        503: models.unavailable(
            "PostgreSQL is not configured or does not answer",
            down="history unavailable: PostgreSQL did not answer (...); "
            "the live rates are still served",
        ),
    },
)
async def history(
    request: Request,
    direction: Annotated[
        str, Query(description="one direction, case-insensitive", examples=["BTC-USD"])
    ],
    since: Annotated[
        str | None,
        Query(
            description="RFC 3339 time with offset, inclusive; default: the oldest stored",
            examples=["2026-11-24T16:00:00Z"],
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="RFC 3339 time with offset, exclusive; default: no end",
            examples=["2026-11-24T17:00:00Z"],
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="quotes per page", examples=[100])
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page",
            examples=["WyIyMDI2LTExLTI0VDE2OjAwOjAxLjAwMDAwMFoiLCJxMSJd"],
        ),
    ] = None,
    resolution: Annotated[
        Resolution,
        Query(
            description="`raw`: every quote; `1m`: per minute and venue, open, high, low, "
            "close and count",
            examples=["1m"],
        ),
    ] = "raw",
    if_none_match: IfNoneMatch = None,
) -> Response:
    state = request.app.state
    try:
        wanted = parse_directions([direction], state.snapshot.directions)
        if len(wanted) != 1:
            raise ApiError(422, "history takes one direction at a time")
        query = make_query(wanted[0], since, until, limit, cursor, resolution)
        answer = Answer.ok(await state.history.fetch(query))
    except ApiError as exc:
        answer = Answer.error(exc)
    return respond(answer, if_none_match)
