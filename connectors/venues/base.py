"""What a venue module declares, and the small pure helpers every parser shares."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from schemas.errors import FrameError
from schemas.records import Quote

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FrameKind(enum.Enum):
    """What a frame means to the connection loop (parse() decides what it means for prices)."""

    DATA = "data"  # market data: proves the feed is alive
    HEARTBEAT = "heartbeat"  # venue keep-alive: proves the connection, not the feed
    CONTROL = "control"  # subscription acks, status, pongs
    ERROR = "error"  # an error reported by the venue; the socket stays open
    RECONNECT = "reconnect"  # the venue asks clients to reconnect (shutdown, upgrade)
    MALFORMED = "malformed"  # not a frame this venue sends


@dataclass(frozen=True, slots=True)
class Frame:
    """A classified frame: its kind and its Kafka key (symbol or stream, else the venue)."""

    kind: FrameKind
    key: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A message the client must send on a timer to keep the connection."""

    message: str
    interval_s: float


@dataclass(frozen=True)
class WebsocketVenue:
    """Everything that differs between websocket venues; the shared loop does the rest."""

    name: str
    #: Attribute of the connector settings holding the websocket URL (``binance_ws_url``).
    url_setting: str
    #: Venue symbol -> market in canonical asset codes (``"BTCUSDT": "BTC-USDT"``).
    markets: Mapping[str, str]
    #: The URL to open for these symbols, given the configured URL.
    connect_url: Callable[[str, Sequence[str]], str]
    #: Messages to send after connecting, in order.
    subscribe: Callable[[Sequence[str]], Sequence[str]]
    classify: Callable[[str], Frame]
    parse: Callable[[str, datetime], list[Quote]]
    heartbeat: Heartbeat | None = None
    #: No frame at all for this long means the connection is dead.
    silence_limit_s: float = 3.0
    #: The venue ends connections at this age; the loop rotates a bit before it.
    max_lifetime_s: float | None = None
    #: Client messages per second the venue tolerates on one connection.
    max_messages_per_s: float = 5.0


# -- pure helpers for parsers ---------------------------------------------------------------


def price(value: object, what: str) -> Decimal:
    """A positive finite price from a JSON string (or an exact JSON number); else FrameError."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise FrameError(f"{what}: expected a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise FrameError(f"{what}: not a number: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise FrameError(f"{what}: not a positive finite price: {value!r}")
    return number


def millis(value: object, what: str) -> datetime:
    """Epoch milliseconds (int or digit string) as an aware UTC datetime, exactly."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(f"{what}: expected epoch milliseconds, got {value!r}")
    return EPOCH + timedelta(milliseconds=value)


def quote_id(venue: str, symbol: str, ts: datetime, value: Decimal) -> str:
    """The id of a quote whose venue gives no sequence or trade id: a stable short hash."""
    digest = hashlib.blake2b(
        f"{venue}|{symbol}|{ts.isoformat()}|{value}".encode(), digest_size=10
    ).hexdigest()
    return f"{venue}:{symbol}:h{digest}"


def excerpt(frame: str, limit: int = 120) -> str:
    """A short single-line excerpt of a frame for logs."""
    flat = frame.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[:limit] + "..."
