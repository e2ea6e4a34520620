"""The API's in-memory copy of rates.latest, and the pure v1 answer computed from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson

from schemas.records import Latest, format_decimal
from schemas.topics import ACTIVE_KEY
from schemas.venues import EXCHANGERS

#: Aliases accepted for ``exchanger`` (the original spelling of the service's first client).
EXCHANGER_ALIASES = {"coingeko": "coingecko"}


class ApiError(Exception):
    """An answer other than 200: status, message, and the Retry-After for 503s."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class Snapshot:
    """Direction -> Latest, plus the active venue, as last seen on rates.latest."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.latest: dict[str, Latest] = {}
        self.active: Latest | None = None
        self.updated_at: float | None = None
        self._clock = clock

    def apply(self, record: Latest) -> None:
        if record.direction == ACTIVE_KEY:
            self.active = record
        else:
            self.latest[record.direction] = record
        self.updated_at = self._clock()

    @property
    def loaded(self) -> bool:
        return self.active is not None

    def age_s(self) -> float | None:
        return None if self.updated_at is None else self._clock() - self.updated_at


def parse_directions(values: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """Repeatable and comma-separated, case-insensitive, duplicates collapsed, order kept."""
    if not values:
        return list(known)
    asked = [part.strip().upper() for v in values for part in v.split(",") if part.strip()]
    if not asked:
        return list(known)
    unknown = [d for d in dict.fromkeys(asked) if d not in known]
    if unknown:
        raise ApiError(
            422,
            f"unknown direction {', '.join(unknown)}; valid directions: {', '.join(known)}",
        )
    return list(dict.fromkeys(asked))


def parse_exchanger(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    name = EXCHANGER_ALIASES.get(name, name)
    if name not in EXCHANGERS:
        raise ApiError(
            422, f"unknown exchanger {value!r}; valid exchangers: {', '.join(EXCHANGERS)}"
        )
    return name


def courses_v1(snapshot: Snapshot, exchanger: str | None, directions: Sequence[str]) -> bytes:
    """The exact v1 body; ApiError(503) when the venue has no fresh data for them."""
    venue = exchanger
    if venue is None:
        if snapshot.active is None or snapshot.active.venue is None:
            raise ApiError(503, "no rates yet: no venue has delivered fresh data", 1)
        venue = snapshot.active.venue
    parts = []
    for direction in directions:
        record = snapshot.latest.get(direction)
        quote = record.quotes.get(venue) if record is not None else None
        if quote is not None and quote.fresh:
            parts.append(
                b'{"direction":'
                + orjson.dumps(direction)
                + b',"value":'
                + format_decimal(quote.value).encode()
                + b"}"
            )
    if not parts:
        raise ApiError(503, f"{venue} has no fresh rate for {', '.join(directions)}", 1)
    return b'{"exchanger":' + orjson.dumps(venue) + b',"courses":[' + b",".join(parts) + b"]}"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def readiness(snapshot: Snapshot, max_age_s: float = 5.0) -> Readiness:
    if not snapshot.loaded:
        return Readiness(False, "snapshot not loaded: no active venue on rates.latest yet")
    age = snapshot.age_s()
    if age is not None and age > max_age_s:
        return Readiness(False, f"no record from rates.latest for {age:.0f} s (pipeline down?)")
    return Readiness(True, "ok")
