"""Version 2: courses with their provenance, a live stream of changes, venues, history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from api import models
from api.answers import Answer, respond
from api.dependencies import (
    AskedDirections,
    Clock,
    CurrentSnapshot,
    Feed,
    HistoryStore,
    Now,
    Settings,
    single_valued,
)
from api.history import make_query
from api.models import (
    NOT_MODIFIED,
    UNKNOWN_DIRECTION,
    CoursesV2,
    DirectionsV2,
    HistoryBars,
    HistoryPage,
    SwitchesPage,
    VenuesV2,
)
from api.params import (
    DEFAULT_LIMIT,
    HistoryDirection,
    HistoryResolution,
    IfNoneMatch,
    LastEventId,
    Limit,
    PageCursor,
    Since,
    SwitchDirections,
    Until,
    parse_directions,
    parse_history_direction,
)
from api.render.directions import directions_v2
from api.render.v2 import courses_v2, venues_v2
from api.stream import SLOTS, SlotStream, course_events
from api.switches import make_switch_query, switches_page
from schemas.topics import ACTIVE_KEY

# A bad parameter raises ApiError, which the app answers as the error it names.
router = APIRouter(
    prefix="/api/v2",
    tags=["v2"],
    responses=models.INVALID,
    dependencies=[Depends(single_valued)],
)


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
    snapshot: CurrentSnapshot,
    feed: Feed,
    now: Now,
    wanted: AskedDirections,
    if_none_match: IfNoneMatch = None,
) -> Response:
    return respond(Answer.ok(courses_v2(snapshot, wanted, now, feed.away())), if_none_match)


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
            "content": {
                "text/event-stream": {
                    "schema": models.SSE_EVENT,
                    "example": models.SSE_EXAMPLE,
                }
            },
        },
        422: UNKNOWN_DIRECTION,
        503: models.unavailable(
            "more event streams are open in this process than API_MAX_STREAMS",
            too_many="too many open event streams: 1000 per process (API_MAX_STREAMS); "
            "poll /api/v2/courses or retry later",
        ),
    },
)
async def stream(
    snapshot: CurrentSnapshot,
    settings: Settings,
    clock: Clock,
    wanted: AskedDirections,
    last_event_id: LastEventId = None,
) -> Response:
    SLOTS.take(settings.api_max_streams)
    events = course_events(snapshot, wanted, last_event_id, settings.api_stream_max_s, clock)
    return SlotStream(
        events,
        SLOTS,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/venues",
    response_model=VenuesV2,
    summary="Each venue's connection state, last frame age and the directions it serves",
    responses={200: {"headers": models.CACHE_HEADERS}, 304: NOT_MODIFIED},
)
async def venues(
    snapshot: CurrentSnapshot, settings: Settings, now: Now, if_none_match: IfNoneMatch = None
) -> Response:
    body = venues_v2(snapshot, settings.rates_venues, now)
    return respond(Answer.ok(body), if_none_match)


@router.get(
    "/directions",
    response_model=DirectionsV2,
    summary="Every configured direction: which venues serve it and how, which cannot and why",
    description=(
        "From the connector's view of each venue (`venues.status`): the market read for each "
        "direction (`how`: a direct USD market, a USDT market counted as USD, USDC-USDT "
        "inverted, or X-RUB derived through the USD-RUB reference), and for each venue that "
        "cannot serve it, the reason (its market is not listed or not trading). `unserved` "
        "names the directions no enabled venue lists."
    ),
    responses={200: {"headers": models.CACHE_HEADERS}, 304: NOT_MODIFIED},
)
async def directions(
    snapshot: CurrentSnapshot, settings: Settings, if_none_match: IfNoneMatch = None
) -> Response:
    body = directions_v2(snapshot, settings.rates_venues, settings.rates_usdt_as_usd)
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
    snapshot: CurrentSnapshot,
    store: HistoryStore,
    direction: HistoryDirection,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
    resolution: HistoryResolution = "raw",
    if_none_match: IfNoneMatch = None,
) -> Response:
    # Every value given: several directions, repeated or comma-separated, are one 422.
    asked = request.query_params.getlist("direction") or [direction]
    wanted = parse_history_direction(asked, snapshot.directions)
    query = make_query(wanted, since, until, limit, cursor, resolution)
    return respond(Answer.ok(await store.fetch(query)), if_none_match)


@router.get(
    "/switches",
    response_model=SwitchesPage,
    summary="Stored venue switches, oldest first, in pages",
    description=(
        "Every change of the venue chosen for a direction, as stored by the history writer "
        "(`direction` `*` is the active venue of v1; a direction's first choice has a null "
        "`from_venue`), with `since <= at < until`, oldest first (kept "
        "`RATES_HISTORY_ROLLUP_RETENTION_DAYS`, the newest of each direction always). Follow "
        "`next_cursor` for the next page. Read from PostgreSQL; when it is away this endpoint "
        "answers 503 and the others keep serving."
    ),
    responses={
        200: {"headers": models.CACHE_HEADERS},
        304: NOT_MODIFIED,
        422: models.error(
            "bad direction, time, limit or cursor",
            direction="unknown direction BTC-EUR; valid directions: BTC-USD, ..., *",
            cursor="cursor is not one this API returned: pass next_cursor unchanged",
        ),
        503: models.unavailable(
            "PostgreSQL is not configured or does not answer",
            down="history unavailable: PostgreSQL did not answer (...); "
            "the live rates are still served",
        ),
    },
)
async def switches(
    snapshot: CurrentSnapshot,
    store: HistoryStore,
    direction: SwitchDirections = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    known = (*snapshot.directions, ACTIVE_KEY)
    wanted = parse_directions(direction, known) if direction else []
    query = make_switch_query(
        wanted if len(wanted) < len(known) else [], since, until, limit, cursor
    )
    body = switches_page(query, await store.rows(*query.sql()))
    return respond(Answer.ok(body), if_none_match)
