"""What a venue module declares, and the small pure helpers every parser shares."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

from connectors.venues.naming import Naming
from schemas.errors import FrameError, UnknownSymbol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


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
class MarketQuote:
    """One price of one venue market, as a parser reads it from a frame.

    ``market`` is the venue's market in canonical asset codes (``BTC-USDT``), not yet a
    configured direction: normalization (pipeline/normalize.py) maps markets to directions.
    """

    venue: str
    market: str
    value: Decimal
    #: The venue's event time, or the receive time when the venue gives none.
    ts: datetime
    received_at: datetime
    #: Unique per quote: the venue's trade or sequence id, else a hash (``quote_id``).
    id: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A message the client must send on a timer to keep the connection."""

    message: str
    interval_s: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` events per ``per_s`` seconds (bursts up to ``count`` allowed)."""

    count: int
    per_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.per_s


@dataclass(frozen=True)
class SymbolCheck:
    """How to ask a venue's REST API whether the configured symbols exist and trade."""

    #: Attribute of the connector settings holding the REST base URL (``binance_api_url``).
    api_setting: str
    #: Request paths (with their query) that describe these symbols.
    paths: Callable[[Sequence[str]], Sequence[str]]
    #: (HTTP status, body) -> {symbol: trading?} for the symbols the answer lists; FrameError
    #: when the answer says nothing usable (the check then counts as not done).
    listed: Callable[[int, str], Mapping[str, bool]]


@dataclass(frozen=True)
class WebsocketVenue:
    """Everything that differs between websocket venues; the shared loop does the rest."""

    name: str
    #: Attribute of the connector settings holding the websocket URL (``binance_ws_url``).
    url_setting: str
    #: Venue symbol -> market for the default directions (``"BTCUSDT": "BTC-USDT"``); the
    #: connector derives the configured ones through ``naming``.
    markets: Mapping[str, str]
    naming: Naming
    #: The URL to open for these symbols, given the configured URL.
    connect_url: Callable[[str, Sequence[str]], str]
    #: Messages to send after connecting, in order.
    subscribe: Callable[[Sequence[str]], Sequence[str]]
    classify: Callable[[str], Frame]
    parse: Callable[[str, datetime], list[MarketQuote]]
    heartbeat: Heartbeat | None = None
    #: No frame at all for this long means the connection is dead.
    silence_limit_s: float = 3.0
    #: The venue ends connections at this age; the loop rotates a bit before it.
    max_lifetime_s: float | None = None
    #: Attribute of the connector settings holding the age at which to rotate connections
    #: (open a new one, then close the old one); None: connections are never rotated.
    rotate_setting: str | None = None
    #: Client messages per second the venue tolerates on one connection.
    max_messages_per_s: float = 5.0
    #: Connection attempts the venue tolerates (per IP).
    max_connects: RateLimit = RateLimit(1, 1.0)
    symbol_check: SymbolCheck | None = None
    #: Symbols one connection may carry (streams or topics); more open more connections.
    max_symbols_per_connection: int = 1024


@dataclass(frozen=True)
class Auth:
    """An API key sent as a header whose name depends on the plan (CoinGecko demo or pro)."""

    #: Attributes of the connector settings holding the key and the plan.
    key_setting: str
    plan_setting: str
    #: Plan -> header name.
    headers: Mapping[str, str]


@dataclass(frozen=True)
class PollingVenue:
    """A venue read over REST: the shared polling loop GETs one URL every interval."""

    name: str
    #: Attribute of the connector settings holding the base URL (``coingecko_api_url``).
    url_setting: str
    #: Attribute of the connector settings holding the poll interval in seconds.
    interval_setting: str
    markets: Mapping[str, str]
    #: The URL to GET for these symbols, given the configured URL.
    request_url: Callable[[str, Sequence[str]], str]
    classify: Callable[[str], Frame]
    parse: Callable[[str, datetime], list[MarketQuote]]
    auth: Auth | None = None
    #: Requests the venue tolerates; a shorter poll interval is warned about at start.
    max_requests: RateLimit | None = None
    #: parse() with the symbol -> market map the connector sent along (``RawFrame.symbols``),
    #: for venues whose frames name markets by ids no rule can read (CoinGecko coin ids).
    parse_with: Callable[[str, datetime, Mapping[str, str]], list[MarketQuote]] | None = None

    @staticmethod
    def silence_limit(interval_s: float) -> float:
        """No answer for twice the poll interval means the source is dead (DESIGN.md)."""
        return 2 * interval_s


#: What the registry lists: every venue is read over a websocket or by polling REST.
Venue = WebsocketVenue | PollingVenue


def missing_symbols(wanted: Sequence[str], listed: Mapping[str, bool]) -> list[tuple[str, str]]:
    """(symbol, why) for each wanted symbol the venue does not list, or lists as not trading."""
    return [
        (symbol, "is not listed" if symbol not in listed else "is listed but not trading")
        for symbol in wanted
        if not listed.get(symbol, False)
    ]


def unquoted(
    wanted: Sequence[str], markets: Mapping[str, str], quotes: Sequence[MarketQuote]
) -> list[tuple[str, str]]:
    """(symbol, why) for each wanted symbol a polled answer has no price for.

    A REST source answers what it knows and leaves out the rest (CoinGecko omits an unknown
    coin id or currency, CBR's document a currency it does not set), so the answer is the list.
    """
    quoted = {quote.market for quote in quotes}
    return [(symbol, "is not quoted") for symbol in wanted if markets[symbol] not in quoted]


# -- pure helpers for parsers ---------------------------------------------------------------

#: Prices outside these bounds are no price of any market (a ``1e400`` trade, a value of
#: ``1e-30``): the frame is refused, counted, and never served (the outlier rule could
#: not exclude a venue whose every quote is absurd, nor one without a second venue).
MIN_PRICE = Decimal("1e-12")
MAX_PRICE = Decimal("1e12")
#: A price's text longer than this is no venue's (prices have at most ~20 digits).
MAX_PRICE_CHARS = 64


def price(value: object, what: str) -> Decimal:
    """A positive finite price from a JSON string (or an exact JSON number); else FrameError.

    Exponent notation is read (``6.5E4``: records write it in plain digits); a price outside
    [MIN_PRICE, MAX_PRICE] is a FrameError.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise FrameError(f"{what}: expected a decimal string, got {value!r}")
    if isinstance(value, str) and len(value) > MAX_PRICE_CHARS:
        raise FrameError(f"{what}: a price of {len(value)} characters")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise FrameError(f"{what}: not a number: {excerpt(str(value), 40)}") from None
    if not number.is_finite() or number <= 0:
        raise FrameError(f"{what}: not a positive finite price: {excerpt(str(value), 40)}")
    if not MIN_PRICE <= number <= MAX_PRICE:
        raise FrameError(f"{what}: a price out of bounds: {excerpt(str(value), 40)}")
    return number


def millis(value: object, what: str) -> datetime:
    """Epoch milliseconds (int or digit string) as an aware UTC datetime, exactly."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(f"{what}: expected epoch milliseconds, got {value!r}")
    return _after_epoch("milliseconds", value, what)


def rfc3339(value: object, what: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` included; nanoseconds cut to microseconds)."""
    if not isinstance(value, str):
        raise FrameError(f"{what}: expected an RFC 3339 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FrameError(f"{what}: not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise FrameError(f"{what}: time without offset: {value!r}")
    return parsed.astimezone(UTC)


def seconds(value: object, what: str) -> datetime:
    """Epoch seconds (an integer) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(f"{what}: expected epoch seconds, got {value!r}")
    return _after_epoch("seconds", value, what)


def _after_epoch(unit: str, value: int, what: str) -> datetime:
    """EPOCH + value units; FrameError past year 9999 (``datetime``'s limit), not OverflowError."""
    try:
        return EPOCH + timedelta(**{unit: value})
    except OverflowError:
        raise FrameError(f"{what}: {value!r} is past the year 9999") from None


def load_json(frame: str, venue: str) -> Any:
    """A frame's JSON (fast path: prices are strings); FrameError when it is not JSON."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"{venue}: not JSON ({exc})") from None


def _no_constants(name: str) -> Any:
    raise FrameError(f"not a JSON number: {name}")


def load_json_exact(frame: str, venue: str) -> Any:
    """A frame's JSON with every number as Decimal built from its exact text.

    For venues that send prices as JSON numbers (Kraken, CoinGecko): ``0.99980`` stays
    ``Decimal("0.99980")``, never a float. NaN and Infinity are refused.
    """
    try:
        return json.loads(frame, parse_float=Decimal, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise FrameError(f"{venue}: not JSON ({exc.msg} at {exc.pos})") from None
    except FrameError as exc:
        raise FrameError(f"{venue}: {exc}") from None


def json_object(frame: str, venue: str) -> dict[str, Any] | None:
    """The frame's JSON object, or None when it is not one (classify() calls it malformed)."""
    try:
        msg = load_json(frame, venue)
    except FrameError:
        return None
    return msg if isinstance(msg, dict) else None


def listing(
    items: object, symbol_key: str, trading: Callable[[dict[str, Any]], bool], venue: str
) -> dict[str, bool]:
    """Symbol -> trading, for the entries of a venue's REST instrument list."""
    if not isinstance(items, list):
        raise FrameError(f"{venue}: the symbol listing is not a list")
    return {
        item[symbol_key]: trading(item)
        for item in items
        if isinstance(item, dict) and isinstance(item.get(symbol_key), str)
    }


def lookup(
    item: object, key: str, market_of: Callable[[str], str | None], venue: str
) -> tuple[dict[str, Any], str, str]:
    """(entry, symbol, market) of a frame entry naming its symbol under ``key``.

    FrameError when the entry is no object with a symbol; UnknownSymbol when the venue's
    naming rule reads no market from the symbol.
    """
    if not isinstance(item, dict):
        raise FrameError(f"{venue}: an entry is not an object")
    symbol = item.get(key)
    if not isinstance(symbol, str):
        raise FrameError(f"{venue}: an entry without {key}")
    market = market_of(symbol)
    if market is None:
        raise UnknownSymbol(f"{venue}: unknown symbol {symbol!r}")
    return item, symbol, market


def same_url(url: str, symbols: Sequence[str]) -> str:
    """For venues whose URL does not depend on the symbols (they subscribe by message)."""
    return url


def make_quote(
    venue: str,
    symbol: str,
    market: str,
    value: Decimal,
    ts: datetime,
    received_at: datetime,
    ident: str | None = None,
) -> MarketQuote:
    """A market quote; its id is ``ident`` (from a venue trade or sequence id) or else a hash."""
    return MarketQuote(
        venue=venue,
        market=market,
        value=value,
        ts=ts,
        received_at=received_at,
        id=ident or quote_id(venue, symbol, ts, value),
    )


def quote_id(venue: str, symbol: str, ts: datetime, value: Decimal) -> str:
    """The id of a quote whose venue gives no sequence or trade id: a stable short hash."""
    digest = hashlib.blake2b(
        f"{venue}|{symbol}|{ts.isoformat()}|{value}".encode(), digest_size=10
    ).hexdigest()
    return f"{venue}:{symbol}:h{digest}"


def collect(items: Iterable[T], one: Callable[[T], MarketQuote | None]) -> list[MarketQuote]:
    """The quotes of a frame's entries.

    An entry for an unknown symbol is skipped when the frame carries known ones too (their
    data is never lost); a frame of unknown symbols only raises UnknownSymbol.
    """
    quotes: list[MarketQuote] = []
    unknown: UnknownSymbol | None = None
    for item in items:
        try:
            quote = one(item)
        except UnknownSymbol as exc:
            unknown = unknown or exc
            continue
        if quote is not None:
            quotes.append(quote)
    if unknown is not None and not quotes:
        raise unknown
    return quotes


def excerpt(frame: str, limit: int = 120) -> str:
    """A short single-line excerpt of a frame for logs."""
    flat = frame.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[:limit] + "..."
