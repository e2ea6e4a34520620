"""Response models and examples of the API (for OpenAPI); separate from the topic records.

The routes render their bodies with orjson (values printed from the Decimal); these models
describe those bodies, and the contract tests check that every answer conforms to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.records import VenueState
from schemas.venues import EXCHANGERS

VALUE_DOC = "the rate: a JSON number printed with the venue's own digits"


class CourseV1(BaseModel):
    direction: str = Field(examples=["BTC-USD"], description="BASE-QUOTE")
    value: float = Field(examples=[54000.000123], description=VALUE_DOC)


class CoursesV1(BaseModel):
    exchanger: str = Field(examples=["binance"], description="the venue the rates come from")
    courses: list[CourseV1]


class ErrorBody(BaseModel):
    detail: str = Field(description="what is wrong, with the valid values where it helps")


class Leg(BaseModel):
    """One input of a derived rate (X-RUB = X-USD x USD-RUB)."""

    venue: str = Field(examples=["cbr"])
    direction: str = Field(examples=["USD-RUB"])
    value: float = Field(examples=[81.5046], description=VALUE_DOC)
    ts: datetime = Field(description="the venue's time of this input")


class OtherQuote(BaseModel):
    """A fresh quote of another venue, not chosen."""

    venue: str = Field(examples=["kraken"])
    value: float = Field(examples=[54001.1], description=VALUE_DOC)
    ts: datetime = Field(description="the venue's time of the quote")
    age_ms: int = Field(ge=0, description="milliseconds since this host received it")


class CourseV2(BaseModel):
    """One direction: the chosen rate, where and why, and the other fresh venues."""

    direction: str = Field(examples=["BTC-USD"])
    venue: str | None = Field(description="the chosen venue; null: no data yet")
    value: float | None = Field(examples=[54000.000123], description=VALUE_DOC)
    ts: datetime | None = Field(description="the venue's time of the chosen quote")
    received_at: datetime | None = Field(description="when the pipeline received it")
    age_ms: int | None = Field(ge=0, description="milliseconds since it was received")
    stale: bool = Field(description="true: no venue has a fresh quote; the last value is kept")
    reason: str = Field(examples=["preferred venue"], description="why this venue")
    since: datetime | None = Field(description="when this venue became the choice")
    derived_from: list[Leg] | None = Field(description="the inputs of a derived rate, or null")
    quotes: list[OtherQuote] = Field(description="the other venues' fresh quotes")


class ActiveV2(BaseModel):
    """The venue that v1 answers for when no exchanger is given."""

    venue: str | None = Field(examples=["binance"])
    reason: str
    since: datetime | None


class CoursesV2(BaseModel):
    active: ActiveV2 | None
    courses: list[CourseV2]


class VenueV2(BaseModel):
    venue: str = Field(examples=["binance"])
    kind: Literal["exchanger", "reference", "unknown"] = Field(
        description="exchanger: a valid `exchanger` value; reference: a USD-RUB source"
    )
    state: VenueState | None = Field(
        description="connecting, up, silent or down; null: no status received yet"
    )
    since: datetime | None = Field(description="when it entered this state")
    last_frame_at: datetime | None = Field(
        description="when its last data frame arrived: its newest quote on rates.latest, or "
        "its connector's last status report, whichever is newer"
    )
    last_frame_age_ms: int | None = Field(
        ge=0, description="age of its last data frame (not of its status report)"
    )
    detail: str
    status_age_ms: int | None = Field(ge=0, description="age of the last status record")
    directions: list[str] = Field(description="directions it has a fresh quote for")


class VenuesV2(BaseModel):
    venues: list[VenueV2]


class DirectionVenue(BaseModel):
    """A venue that serves a direction, and how."""

    venue: str = Field(examples=["binance"])
    market: str = Field(description="the venue market read for it", examples=["SOL-USDT"])
    how: Literal["direct", "usdt_as_usd", "via_usdt", "inverted", "derived"] = Field(
        description="`direct`: the venue's X-USD market; `usdt_as_usd`: its X-USDT market, "
        "USDT counted as USD; `via_usdt`: X-USDT times the venue's USDT-USD; `inverted`: "
        "USDC-USDT inverted (USDT's own price); `derived`: X-RUB, the venue's X-USD times the "
        "USD-RUB reference"
    )
    detail: str = Field(examples=["SOL-USDT market, USDT counted as USD"])
    fresh: bool | None = Field(description="its quote is fresh now; null: no quote yet")


class DirectionMissing(BaseModel):
    """A venue that cannot serve a direction."""

    venue: str = Field(examples=["coinbase"])
    reason: str = Field(examples=["XMR-USD is not listed"])


class DirectionV2(BaseModel):
    direction: str = Field(examples=["SOL-USD"])
    served: bool = Field(description="at least one enabled venue lists a market for it")
    venue: str | None = Field(description="the venue serving it now (failover); null: none yet")
    venues: list[DirectionVenue]
    missing: list[DirectionMissing]


class DirectionsV2(BaseModel):
    directions: list[DirectionV2] = Field(description="every configured direction, in order")
    unserved: list[str] = Field(
        description="directions no enabled venue lists a market for (the connector's start "
        "WARNING names them too)"
    )


class HistoryQuote(BaseModel):
    id: str
    venue: str
    direction: str
    value: float = Field(description=VALUE_DOC)
    ts: datetime
    received_at: datetime
    derived_from: list[Leg] | None


class HistoryPage(BaseModel):
    direction: str
    quotes: list[HistoryQuote] = Field(description="oldest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class HistoryBar(BaseModel):
    """One venue's quotes of the direction within one minute (venue time)."""

    minute: datetime = Field(description="start of the minute")
    venue: str = Field(examples=["binance"])
    open: float = Field(description="the minute's first quote (by ts, then id); " + VALUE_DOC)
    high: float = Field(description="the highest quote; " + VALUE_DOC)
    low: float = Field(description="the lowest quote; " + VALUE_DOC)
    close: float = Field(description="the minute's last quote (by ts, then id); " + VALUE_DOC)
    count: int = Field(ge=1, description="quotes in the minute")
    first_ts: datetime = Field(description="venue time of the first quote")
    last_ts: datetime = Field(description="venue time of the last quote")


class HistoryBars(BaseModel):
    direction: str
    resolution: Literal["1m"]
    bars: list[HistoryBar] = Field(description="oldest minute first; within a minute by venue")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class Switch(BaseModel):
    """A change of the venue chosen for a direction (``*``: the active venue of v1)."""

    direction: str = Field(examples=["BTC-USD"])
    from_venue: str | None = Field(description="null: the direction's first choice")
    to_venue: str | None = Field(examples=["binance"])
    reason: str = Field(examples=["binance down"])
    at: datetime = Field(description="when the new venue was chosen")


class SwitchesPage(BaseModel):
    switches: list[Switch] = Field(description="oldest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    ready: bool
    reason: str = Field(examples=["ok", "snapshot not loaded: no active venue on rates.latest yet"])


# -- OpenAPI response fragments -------------------------------------------------------------

CACHE_HEADERS: dict[str, Any] = {
    "ETag": {"description": "tag of this body, for If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`max-age=1`", "schema": {"type": "string"}},
}
RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "seconds to wait before asking again",
        "schema": {"type": "string"},
    }
}


def _example(summary: str, detail: str) -> dict[str, Any]:
    return {"summary": summary, "value": {"detail": detail}}


V1_422 = {
    "exchanger": _example(
        "unknown exchanger", f"unknown exchanger 'mtgox'; valid exchangers: {', '.join(EXCHANGERS)}"
    ),
    "direction": _example(
        "unknown direction", "unknown direction BTC-EUR; valid directions: BTC-USD, ETH-USD, ..."
    ),
}
V1_503 = {
    "no data": _example(
        "nothing has arrived yet", "no rates yet: nothing has arrived from rates.latest"
    ),
    "warming up": _example(
        "at start, before the failover policy chose the active venue",
        "warming up: the failover policy has not chosen the active venue yet (it waits to "
        "hear from every enabled venue, or RATES_WARMUP_S)",
    ),
    "stale": _example("no fresh rate", "binance has no fresh rate for ETH-RUB"),
}


def error(description: str, **examples: str) -> dict[str, Any]:
    """An error response for OpenAPI: ErrorBody with named examples."""
    found: dict[str, Any] = {"model": ErrorBody, "description": description}
    if examples:
        found["content"] = {
            "application/json": {"examples": {k: _example(k, v) for k, v in examples.items()}}
        }
    return found


def unavailable(description: str, **examples: str) -> dict[str, Any]:
    return {**error(description, **examples), "headers": RETRY_AFTER}


#: Every router's default 422: FastAPI's own validation errors get the same ErrorBody.
INVALID: dict[int | str, dict[str, Any]] = {
    422: error(
        "a parameter is missing or of the wrong type",
        invalid="limit: Input should be a valid integer, unable to parse string as an integer",
    )
}

UNKNOWN_DIRECTION = error(
    "unknown direction; the message lists the valid ones",
    direction="unknown direction BTC-EUR; valid directions: BTC-USD, ETH-USD, ...",
)
NOT_MODIFIED = {"description": "unchanged since the ETag in If-None-Match"}

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
