"""The Central Bank of Russia's official daily rates (XML_daily.asp), polled: USD-RUB.

The document (windows-1251) lists every currency of the day:
``<ValCurs Date="24.11.2026" ...><Valute ID="R01235"><CharCode>USD</CharCode>
<Nominal>1</Nominal><Value>81,5000</Value>...``. Values use a decimal comma and are per
``Nominal`` units. The rate is set for a Moscow day, so its time is that day's midnight
in Moscow (UTC+3). A reference source: a venue of the pipeline, never an exchanger.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from connectors.venues.base import (
    Frame,
    FrameKind,
    MarketQuote,
    PollingVenue,
    make_quote,
    price,
    same_url,
)
from schemas.errors import FrameError, UnknownSymbol

NAME = "cbr"

#: Currency code (``CharCode``) -> market.
MARKETS = {"USD": "USD-RUB"}

#: Moscow time has been UTC+3 all year since 2014.
MOSCOW = timezone(timedelta(hours=3))


def _document(frame: str) -> ET.Element:
    try:
        root = ET.fromstring(frame)
    except ET.ParseError as exc:
        raise FrameError(f"cbr: not XML ({exc})") from None
    if root.tag != "ValCurs":
        raise FrameError(f"cbr: expected a ValCurs document, got <{root.tag}>")
    return root


def classify(frame: str) -> Frame:
    try:
        _document(frame)
    except FrameError:
        return Frame(FrameKind.MALFORMED, NAME)
    return Frame(FrameKind.DATA, NAME)


def _date(root: ET.Element) -> datetime:
    value = root.get("Date", "")
    try:
        day = datetime.strptime(value, "%d.%m.%Y")
    except ValueError:
        raise FrameError(f"cbr: bad document Date {value!r}") from None
    return day.replace(tzinfo=MOSCOW).astimezone(UTC)


def _rate(valute: ET.Element, code: str) -> Decimal:
    value = price((valute.findtext("Value") or "").replace(",", "."), f"cbr {code} Value")
    nominal = price((valute.findtext("Nominal") or "1").strip(), f"cbr {code} Nominal")
    return value if nominal == 1 else value / nominal


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """USD-RUB (Value / Nominal) at midnight Moscow time of the document's date."""
    root = _document(frame)
    ts = _date(root)
    quotes = []
    for valute in root.iter("Valute"):
        code = (valute.findtext("CharCode") or "").strip()
        market = MARKETS.get(code)
        if market is None:
            continue  # the document lists every currency; only ours matter
        value = _rate(valute, code)
        quotes.append(make_quote(NAME, code, market, value, ts, received_at))
    if not quotes:
        raise UnknownSymbol(f"cbr: no {', '.join(MARKETS)} rate in the document")
    return quotes


VENUE = PollingVenue(
    name=NAME,
    url_setting="cbr_url",
    interval_setting="cbr_poll_interval_s",
    markets=MARKETS,
    request_url=same_url,
    classify=classify,
    parse=parse,
)
