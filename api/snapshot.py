"""The API's in-memory copy of rates.latest and venues.status, and the pure v1 answer.

The snapshot is written only by the feed (api/feed.py) and read by requests on the same
event loop. A record that changes nothing (the pipeline republishes every key each second)
keeps every cached answer; a change clears them and tells the event streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qsl

import orjson

from schemas.records import Latest, VenueStatus, format_decimal
from schemas.topics import ACTIVE_KEY
from schemas.venues import EXCHANGERS

#: Aliases accepted for ``exchanger`` (the original spelling of the service's first client).
EXCHANGER_ALIASES = {"coingeko": "coingecko"}

#: Retry-After of every 503: the pipeline republishes each key at least every second.
RETRY_AFTER_S = 1

#: Distinct query strings whose v1 answers are kept between two changes (a bound on memory).
V1_CACHE_SIZE = 4096
#: Longer query strings are answered but not cached.
V1_CACHE_KEY_MAX = 512

#: How much of a bad parameter an error message repeats.
_ECHO_MAX = 40


def number(value: Decimal) -> orjson.Fragment:
    """A JSON number printed from the Decimal with its own digits (no float round trip)."""
    return orjson.Fragment(format_decimal(value).encode())


class ApiError(Exception):
    """An answer other than 200: status, message, and the Retry-After for 503s."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def unavailable(message: str) -> ApiError:
    return ApiError(503, message, RETRY_AFTER_S)


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer as sent: status, raw headers and body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes | None = None

    @classmethod
    def make(
        cls,
        status: int,
        body: bytes,
        *extra: tuple[bytes, bytes],
        etag: bytes | None = None,
    ) -> Answer:
        """A JSON answer with its length and any ``extra`` headers."""
        headers = ((b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)))
        return cls(status, headers + extra, body, etag)

    @classmethod
    def ok(cls, body: bytes) -> Answer:
        """200 with a strong ETag of the body and a one-second shared cache."""
        etag = b'"' + hashlib.blake2b(body, digest_size=8).hexdigest().encode() + b'"'
        return cls.make(200, body, (b"etag", etag), (b"cache-control", b"max-age=1"), etag=etag)

    @classmethod
    def error(cls, exc: ApiError) -> Answer:
        extra = [(b"cache-control", b"no-store")]
        if exc.retry_after_s is not None:
            extra.append((b"retry-after", b"%d" % exc.retry_after_s))
        return cls.make(exc.status, orjson.dumps({"detail": exc.message}), *extra)

    def not_modified(self) -> Answer:
        """The 304 for a client that already holds this body."""
        assert self.etag is not None
        return Answer(304, ((b"etag", self.etag), (b"cache-control", b"max-age=1")), b"")


def matches(etag: bytes | None, if_none_match: bytes | None) -> bool:
    """If-None-Match (weak comparison): ``*`` or any listed tag equal to ours."""
    if etag is None or not if_none_match:
        return False
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags


class Changes:
    """Keys changed since a subscriber last looked, coalesced: bounded by the number of keys."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self._event = asyncio.Event()

    def push(self, key: str) -> None:
        self.pending.add(key)
        self._event.set()

    async def wait(self, timeout_s: float) -> set[str]:
        """The keys changed since the last call; empty after ``timeout_s`` without a change."""
        if not self.pending:
            try:
                await asyncio.wait_for(self._event.wait(), timeout_s)
            except TimeoutError:
                return set()
        self._event.clear()
        keys, self.pending = self.pending, set()
        return keys


class Snapshot:
    """Direction -> Latest, the active venue, and each venue's status, as last seen."""

    def __init__(
        self,
        directions: Sequence[str],
        exchangers: Sequence[str] = EXCHANGERS,
        clock: Callable[[], float] = time.monotonic,
        max_silence_s: float = 10.0,
    ) -> None:
        self.directions = tuple(directions)
        self.exchangers = tuple(exchangers)
        self.max_silence_s = max_silence_s
        self._silent = Answer.error(
            unavailable(
                f"no rates from the pipeline for more than {max_silence_s:g} s "
                "(pipeline or Kafka down): the last ones can no longer be vouched for"
            )
        )
        self.latest: dict[str, Latest] = {}
        self.active: Latest | None = None
        self.venues: dict[str, VenueStatus] = {}
        #: Key (direction or ``*``) -> Kafka timestamp (ms) of its last change.
        self.changed_ms: dict[str, int] = {}
        #: Venue -> Kafka timestamp (ms) of its last status record.
        self.status_ms: dict[str, int] = {}
        #: Monotonic time of the last rates.latest record, changed or not.
        self.updated_at: float | None = None
        self._clock = clock
        self._subscribers: set[Changes] = set()
        self._v1: dict[bytes, Answer] = {}

    # -- writes (the feed) ------------------------------------------------------------------

    def apply(self, record: Latest, stamp_ms: int) -> bool:
        """Store a rates.latest record; True when it changed something."""
        self.updated_at = self._clock()
        key = record.direction
        previous = self.active if key == ACTIVE_KEY else self.latest.get(key)
        if previous == record:
            return False
        if key == ACTIVE_KEY:
            self.active = record
        else:
            self.latest[key] = record
        self._changed(key, stamp_ms)
        return True

    def apply_status(self, status: VenueStatus, stamp_ms: int) -> bool:
        """Store a venues.status record; True when it changed something."""
        previous = self.venues.get(status.venue)
        self.venues[status.venue] = status
        self.status_ms[status.venue] = stamp_ms
        return previous != status

    def _changed(self, key: str, stamp_ms: int) -> None:
        self.changed_ms[key] = stamp_ms
        self._v1.clear()
        for subscriber in self._subscribers:
            subscriber.push(key)

    # -- reads ------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.active is not None

    def age_s(self) -> float | None:
        return None if self.updated_at is None else self._clock() - self.updated_at

    def subscribe(self) -> Changes:
        changes = Changes()
        self._subscribers.add(changes)
        return changes

    def unsubscribe(self, changes: Changes) -> None:
        self._subscribers.discard(changes)

    def v1(self, query: bytes) -> Answer:
        """The v1 answer to a raw query string, rendered once per change of the snapshot."""
        answer = self._v1.get(query)
        if answer is None:
            exchanger, directions = v1_params(query)
            answer = answer_v1(self, exchanger, directions)
            if len(self._v1) < V1_CACHE_SIZE and len(query) <= V1_CACHE_KEY_MAX:
                self._v1[query] = answer
        return self.vouch(answer)

    def vouch(self, answer: Answer) -> Answer:
        """A 200 only while records keep coming: the pipeline republishes every second."""
        if answer.status == 200 and self._clock() - (self.updated_at or 0.0) > self.max_silence_s:
            return self._silent
        return answer


# -- parameters -----------------------------------------------------------------------------


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


def v1_params(query: bytes) -> tuple[str | None, list[str]]:
    """``exchanger`` (the last one wins) and every ``direction``, decoded as Starlette does."""
    exchanger: str | None = None
    directions: list[str] = []
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "direction":
            directions.append(value)
        elif name == "exchanger":
            exchanger = value
    return exchanger, directions


# -- answers --------------------------------------------------------------------------------


def courses_v1(snapshot: Snapshot, exchanger: str | None, directions: Sequence[str]) -> bytes:
    """The exact v1 body; ApiError(503) when the venue has no fresh data for them."""
    venue = exchanger
    if venue is None:
        if snapshot.active is None:
            raise unavailable("no rates yet: nothing has arrived from rates.latest")
        if snapshot.active.venue is None:
            raise unavailable("no venue has fresh rates at the moment")
        venue = snapshot.active.venue
    courses = []
    for direction in directions:
        record = snapshot.latest.get(direction)
        quote = record.quotes.get(venue) if record is not None else None
        if quote is not None and quote.fresh:
            courses.append({"direction": direction, "value": number(quote.value)})
    if not courses:
        raise unavailable(f"{venue} has no fresh rate for {', '.join(directions)}")
    return orjson.dumps({"exchanger": venue, "courses": courses})


def answer_v1(snapshot: Snapshot, exchanger: str | None, directions: Sequence[str]) -> Answer:
    """Validation, body and errors of ``GET /api/v1/courses``, as one answer."""
    try:
        venue = parse_exchanger(exchanger, snapshot.exchangers)
        wanted = parse_directions(directions, snapshot.directions)
        return Answer.ok(courses_v1(snapshot, venue, wanted))
    except ApiError as exc:
        return Answer.error(exc)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def readiness(
    snapshot: Snapshot, broker_error: str | None = None, max_age_s: float = 5.0
) -> Readiness:
    """Ready when the broker answers, the snapshot is loaded and records keep coming."""
    if broker_error is not None:
        return Readiness(False, f"Kafka broker unreachable: {broker_error}")
    if not snapshot.loaded:
        return Readiness(False, "snapshot not loaded: no active venue on rates.latest yet")
    age = snapshot.age_s()
    if age is not None and age > max_age_s:
        return Readiness(False, f"no record from rates.latest for {age:.0f} s (pipeline down?)")
    return Readiness(True, "ok")
