"""Query parameters: how the routes declare them (for OpenAPI) and how they are validated.

The parsing functions are pure and shared by v1 (both its FastAPI route and the edge's fast
path), v2 and history; a bad value raises :class:`~api.answers.ApiError` (422) naming the
valid ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import Header, Query

from api.answers import ApiError
from schemas.records import parse_time
from schemas.venues import EXCHANGERS

#: Aliases accepted for ``exchanger`` (the original spelling of the service's first client).
EXCHANGER_ALIASES = {"coingeko": "coingecko"}

#: Quotes per history page: by default, and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: History resolutions: ``raw``, every quote; ``1m``, per minute and venue, open, high, low,
#: close and count.
Resolution = Literal["raw", "1m"]

#: Parameters that take one value: given twice, the request is refused.
SINGLE_VALUED = frozenset({"exchanger", "since", "until", "limit", "cursor", "resolution"})

#: RFC 3339's date-time (section 5.6), with the space its note allows between date and time.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

#: How much of a bad parameter an error message repeats.
_ECHO_MAX = 40

EXCHANGER_DOC = (
    "venue name, case-insensitive: one of "
    + ", ".join(f"`{name}`" for name in EXCHANGERS)
    + "".join(
        f" (`{alias}` is accepted for `{name}`)"
        for alias, name in EXCHANGER_ALIASES.items()
        if name in EXCHANGERS
    )
    + ". Default: the active venue chosen by the failover policy"
)

# -- declared (what FastAPI reads from the request, and OpenAPI shows) ------------------------

Directions = Annotated[
    list[str] | None,
    Query(
        description="directions, repeatable or comma-separated, case-insensitive; "
        "default: every configured direction, in the configured order",
        examples=["BTC-USD,ETH-RUB"],
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        description="an ETag from an earlier answer: 304 if unchanged",
        examples=['"6db6d9d928f217c7"'],
    ),
]
Exchanger = Annotated[
    str | None,
    Query(description=EXCHANGER_DOC, examples=["binance"]),
]
V1Directions = Annotated[
    list[str] | None,
    Query(
        description="directions to return, repeatable (`direction=BTC-USD&direction="
        "ETH-USD`) or comma-separated (`direction=BTC-USD,ETH-USD`), case-insensitive; "
        "duplicates collapse; answered in the order asked. Default: every configured "
        "direction, in the configured order",
        examples=["BTC-USD,ETH-USD"],
    ),
]
SwitchDirections = Annotated[
    list[str] | None,
    Query(
        description="directions, repeatable or comma-separated, case-insensitive; `*` is the "
        "active venue of v1; default: every direction and `*`",
        examples=["BTC-USD,*"],
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        description="the id of the last event received: resume after it",
        examples=["1795540478517"],
    ),
]

HistoryDirection = Annotated[
    str, Query(description="one direction, case-insensitive", examples=["BTC-USD"])
]
Since = Annotated[
    str | None,
    Query(
        description="RFC 3339 time with offset, inclusive; default: the oldest stored",
        examples=["2026-11-24T16:00:00Z"],
    ),
]
Until = Annotated[
    str | None,
    Query(
        description="RFC 3339 time with offset, exclusive; default: no end",
        examples=["2026-11-24T17:00:00Z"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="quotes per page", examples=[100])]
PageCursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page",
        examples=["WyIyMDI2LTExLTI0VDE2OjAwOjAxLjAwMDAwMFoiLCJxMSJd"],
    ),
]
HistoryResolution = Annotated[
    Resolution,
    Query(
        description="`raw`: every quote; `1m`: per minute and venue, open, high, low, close "
        "and count",
        examples=["1m"],
    ),
]

# -- parsed ---------------------------------------------------------------------------------


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO_MAX else value[:_ECHO_MAX] + "..."


def parse_directions(values: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """Repeatable and comma-separated, case-insensitive, duplicates collapsed, order kept."""
    asked = [part.strip().upper() for v in values or () for part in v.split(",")]
    asked = [a for a in asked if a]
    if not asked:
        return list(known)
    wanted = list(dict.fromkeys(asked))
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise ApiError(
            422,
            f"unknown direction {', '.join(map(_echo, unknown))}; "
            f"valid directions: {', '.join(known)}",
        )
    return wanted


def parse_history_direction(values: str | Sequence[str], known: Sequence[str]) -> str:
    """The one direction a history page is of (case-insensitive): several, whether repeated
    or comma-separated, are a 422."""
    wanted = parse_directions([values] if isinstance(values, str) else values, known)
    if len(wanted) != 1:
        raise ApiError(422, "history takes one direction at a time")
    return wanted[0]


def parse_exchanger(value: str | None, exchangers: Sequence[str] = EXCHANGERS) -> str | None:
    """A venue name, case-insensitive, aliases resolved; None (blank) means the active venue."""
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    name = EXCHANGER_ALIASES.get(name, name)
    if name not in exchangers:
        raise ApiError(
            422, f"unknown exchanger {_echo(value)!r}; valid exchangers: {', '.join(exchangers)}"
        )
    return name


def check_single(items: Iterable[tuple[str, str]]) -> None:
    """Refuse a single-valued parameter given more than once (422), rather than silently use
    one of its values; ``direction`` is the only repeatable one."""
    counts = Counter(name for name, _ in items if name in SINGLE_VALUED)
    for name, count in counts.items():
        if count > 1:
            raise ApiError(
                422,
                f"{name} is given {count} times: it takes one value (only direction is repeatable)",
            )


def v1_params(query: bytes) -> tuple[str | None, list[str]]:
    """``exchanger`` (422 when repeated) and every ``direction``, decoded as Starlette does."""
    items = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    check_single(items)
    exchanger = next((value for name, value in items if name == "exchanger"), None)
    return exchanger, [value for name, value in items if name == "direction"]


def parse_rfc3339(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with its offset (``2026-11-24T16:00:00Z``), as aware UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if not _RFC3339.match(text):
            raise ValueError(text)
        # RFC 3339 (5.6): "T" and "Z" may be lower case, and a space may separate date and time.
        return parse_time(text.upper().replace(" ", "T"))
    except ValueError:
        raise ApiError(
            422,
            f"{name}={value[:40]!r} is not an RFC 3339 time with an offset, "
            "e.g. 2026-11-24T16:00:00Z (in a URL, a + of the offset is sent as %2B)",
        ) from None
