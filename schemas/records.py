"""Typed records of every topic and their JSON encoding (each record carries ``"v": 1``).

Prices travel as decimal strings (full precision) and times as RFC 3339 UTC strings with
microseconds. Decoding validates every field and raises :class:`RecordError` naming it.
Changes within a version are additive: unknown fields are ignored on decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Self, cast, get_args

import orjson

from schemas.errors import RecordError

VERSION = 1

VenueState = Literal["connecting", "up", "silent", "down"]
VENUE_STATES: tuple[str, ...] = get_args(VenueState)


# -- scalar codecs ---------------------------------------------------------------------------


def format_time(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds: ``2026-11-24T16:00:00.123456Z``."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: times must be timezone-aware UTC")
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time with an explicit offset into an aware UTC datetime."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return dt.astimezone(UTC)


def format_decimal(value: Decimal) -> str:
    """Plain positional notation, every digit kept (no exponent, no float round trip)."""
    return format(value, "f")


def parse_decimal(value: str) -> Decimal:
    """Parse a finite decimal string; reject NaN, infinities and non-strings."""
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not a decimal string: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return number


# -- field access with errors that name the record and the field ----------------------------


class _Fields:
    __slots__ = ("data", "record")

    def __init__(self, record: str, raw: bytes | str | Mapping[str, Any]) -> None:
        self.record = record
        if isinstance(raw, Mapping):
            data: object = raw
        else:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise RecordError(f"{record}: not JSON ({exc})") from None
        if not isinstance(data, Mapping):
            raise RecordError(f"{record}: expected a JSON object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        version = data.get("v")
        if version != VERSION:
            raise RecordError(f"{record}: unsupported version v={version!r} (expected {VERSION})")

    def _fail(self, name: str, why: str) -> RecordError:
        return RecordError(f"{self.record}.{name}: {why}")

    def get(self, name: str) -> Any:
        if name not in self.data:
            raise self._fail(name, "missing")
        return self.data[name]

    def string(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise self._fail(name, f"expected a string, got {value!r}")
        return value

    def opt_string(self, name: str) -> str | None:
        value = self.data.get(name)
        return None if value is None else self.string(name)

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise self._fail(name, f"expected a boolean, got {value!r}")
        return value

    def time(self, name: str) -> datetime:
        text = self.string(name)
        try:
            return parse_time(text)
        except ValueError as exc:
            raise self._fail(name, str(exc)) from None

    def opt_time(self, name: str) -> datetime | None:
        return None if self.data.get(name) is None else self.time(name)

    def decimal(self, name: str) -> Decimal:
        text = self.string(name)
        try:
            return parse_decimal(text)
        except ValueError as exc:
            raise self._fail(name, str(exc)) from None

    def opt_decimal(self, name: str) -> Decimal | None:
        return None if self.data.get(name) is None else self.decimal(name)

    def array(self, name: str) -> list[Any]:
        value = self.get(name)
        if not isinstance(value, list):
            raise self._fail(name, f"expected a list, got {value!r}")
        return value

    def object(self, name: str) -> Mapping[str, Any]:
        value = self.get(name)
        if not isinstance(value, Mapping):
            raise self._fail(name, f"expected an object, got {value!r}")
        return value

    def opt_strings(self, name: str) -> dict[str, str]:
        """An optional object of strings (a field added within the version): {} when absent."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._fail(name, f"expected an object of strings, got {value!r}")
        return dict(value)


def _opt(fmt: Any, value: Any) -> Any:
    return None if value is None else fmt(value)


def _legs_out(legs: tuple[Leg, ...] | None) -> list[dict[str, Any]] | None:
    return None if legs is None else [leg.to_dict() for leg in legs]


def _legs_in(f: _Fields) -> tuple[Leg, ...] | None:
    if f.data.get("derived_from") is None:
        return None
    items = f.array("derived_from")
    if not all(isinstance(item, Mapping) for item in items):
        raise RecordError(f"{f.record}.derived_from: expected a list of objects")
    return tuple(Leg.from_dict(item) for item in items)


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A venue frame exactly as received (``ticks.raw.<venue>``).

    A replayed frame gets a fresh ``received_at`` and keeps the original one as
    ``recorded_at`` (null for live frames).
    """

    venue: str
    received_at: datetime
    frame: str
    conn: str
    recorded_at: datetime | None = None
    #: Venue symbol -> market, for a venue whose frames name markets by ids that no rule can
    #: read (CoinGecko's coin ids, some looked up at start); empty for every other venue.
    symbols: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "v": VERSION,
            "venue": self.venue,
            "received_at": format_time(self.received_at),
            "frame": self.frame,
            "conn": self.conn,
            "recorded_at": _opt(format_time, self.recorded_at),
        }
        if self.symbols:
            out["symbols"] = dict(self.symbols)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        f = _Fields("RawFrame", raw)
        return cls(
            venue=f.string("venue"),
            received_at=f.time("received_at"),
            frame=f.string("frame"),
            conn=f.string("conn"),
            recorded_at=f.opt_time("recorded_at"),
            symbols=f.opt_strings("symbols"),
        )


@dataclass(frozen=True, slots=True)
class Leg:
    """One input of a derived quote."""

    venue: str
    direction: str
    value: Decimal
    ts: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "direction": self.direction,
            "value": format_decimal(self.value),
            "ts": format_time(self.ts),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        f = _Fields("Leg", {"v": VERSION, **raw})
        return cls(
            venue=f.string("venue"),
            direction=f.string("direction"),
            value=f.decimal("value"),
            ts=f.time("ts"),
        )


@dataclass(frozen=True, slots=True)
class Quote:
    """One price of one direction at one venue (``rates.normalized``, key: direction).

    On ``rates.reference`` the same record carries a reference: its ``direction`` is the
    reference market (``USD-RUB``, ``USDT-USD``).
    """

    venue: str
    direction: str
    value: Decimal
    ts: datetime
    received_at: datetime
    id: str
    derived_from: tuple[Leg, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "venue": self.venue,
            "direction": self.direction,
            "value": format_decimal(self.value),
            "ts": format_time(self.ts),
            "received_at": format_time(self.received_at),
            "id": self.id,
            "derived_from": _legs_out(self.derived_from),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        f = _Fields("Quote", raw)
        return cls(
            venue=f.string("venue"),
            direction=f.string("direction"),
            value=f.decimal("value"),
            ts=f.time("ts"),
            received_at=f.time("received_at"),
            id=f.string("id"),
            derived_from=_legs_in(f),
        )


@dataclass(frozen=True, slots=True)
class VenueQuote:
    """A venue's latest quote of one direction, as carried on ``rates.latest``."""

    value: Decimal
    ts: datetime
    received_at: datetime
    fresh: bool
    #: Since when the venue's quotes of this direction have been fresh without a break (when
    #: its data resumed): the hysteresis is counted from it. None: not fresh, or not known.
    fresh_since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": format_decimal(self.value),
            "ts": format_time(self.ts),
            "received_at": format_time(self.received_at),
            "fresh": self.fresh,
            "fresh_since": _opt(format_time, self.fresh_since),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        f = _Fields("VenueQuote", {"v": VERSION, **raw})
        return cls(
            value=f.decimal("value"),
            ts=f.time("ts"),
            received_at=f.time("received_at"),
            fresh=f.boolean("fresh"),
            fresh_since=f.opt_time("fresh_since"),
        )


@dataclass(frozen=True, slots=True)
class Latest:
    """The chosen rate of one direction (``rates.latest``, key: direction).

    The record keyed ``*`` names the active venue for v1: its ``venue`` is the choice and
    its value fields are null.

    ``quotes`` holds every venue's quote in a complete record (the periodic republish); a
    record published on a change of the rate carries only the chosen venue's quote and
    ``quotes_complete`` false: the other venues' quotes are those of the last complete record
    (:meth:`onto` merges it). A record without the field is complete.
    """

    direction: str
    venue: str | None
    value: Decimal | None
    ts: datetime | None
    received_at: datetime | None
    stale: bool
    reason: str
    since: datetime | None
    quotes: Mapping[str, VenueQuote] = field(default_factory=dict)
    #: The legs of the chosen quote when it is derived (X-RUB), else None.
    derived_from: tuple[Leg, ...] | None = None
    #: False: ``quotes`` holds only the chosen venue's quote (a change record).
    quotes_complete: bool = True

    def onto(self, previous: Latest | None) -> Latest:
        """This record as a complete one: a change record takes the other venues' quotes from
        ``previous`` (the last record of the direction), a complete record stands alone."""
        if self.quotes_complete or previous is None:
            return self
        quotes = {**previous.quotes, **self.quotes}
        return replace(self, quotes=dict(sorted(quotes.items())), quotes_complete=True)

    def change(self) -> Latest:
        """The change record of this rate: only the chosen venue's quote."""
        chosen = {v: q for v, q in self.quotes.items() if v == self.venue}
        return replace(self, quotes=chosen, quotes_complete=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "direction": self.direction,
            "venue": self.venue,
            "value": _opt(format_decimal, self.value),
            "ts": _opt(format_time, self.ts),
            "received_at": _opt(format_time, self.received_at),
            "stale": self.stale,
            "reason": self.reason,
            "since": _opt(format_time, self.since),
            "quotes": {venue: q.to_dict() for venue, q in self.quotes.items()},
            "quotes_complete": self.quotes_complete,
            "derived_from": _legs_out(self.derived_from),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        f = _Fields("Latest", raw)
        quotes_raw = f.object("quotes")
        quotes: dict[str, VenueQuote] = {}
        for venue, item in quotes_raw.items():
            if not isinstance(item, Mapping):
                raise RecordError(f"Latest.quotes.{venue}: expected an object")
            quotes[venue] = VenueQuote.from_dict(item)
        return cls(
            direction=f.string("direction"),
            venue=f.opt_string("venue"),
            value=f.opt_decimal("value"),
            ts=f.opt_time("ts"),
            received_at=f.opt_time("received_at"),
            stale=f.boolean("stale"),
            reason=f.string("reason"),
            since=f.opt_time("since"),
            quotes=quotes,
            derived_from=_legs_in(f),
            quotes_complete=f.boolean("quotes_complete") if "quotes_complete" in f.data else True,
        )


@dataclass(frozen=True, slots=True)
class VenueStatus:
    """A connector's view of one venue (``venues.status``, key: venue)."""

    venue: str
    state: VenueState
    since: datetime
    last_frame_at: datetime | None
    detail: str = ""
    #: Configured direction -> the venue market that serves it (``SOL-USD``: ``SOL-USDT``).
    serves: Mapping[str, str] = field(default_factory=dict)
    #: Configured direction -> why the venue cannot serve it (not listed, not trading).
    missing: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "venue": self.venue,
            "state": self.state,
            "since": format_time(self.since),
            "last_frame_at": _opt(format_time, self.last_frame_at),
            "detail": self.detail,
            "serves": dict(self.serves),
            "missing": dict(self.missing),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        f = _Fields("VenueStatus", raw)
        state = f.string("state")
        if state not in VENUE_STATES:
            raise RecordError(f"VenueStatus.state: {state!r} is not one of {VENUE_STATES}")
        return cls(
            venue=f.string("venue"),
            state=cast(VenueState, state),
            since=f.time("since"),
            last_frame_at=f.opt_time("last_frame_at"),
            detail=f.string("detail"),
            serves=f.opt_strings("serves"),
            missing=f.opt_strings("missing"),
        )
