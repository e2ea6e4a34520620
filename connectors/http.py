"""The REST side of the connectors: one GET as (status, text), charset and Retry-After rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from common.clock import utcnow
from schemas.errors import RateLimited, VenueError

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


def decode_body(body: bytes, charset: str | None) -> str:
    """The text of an answer: the header's charset, else the XML declaration's, else UTF-8."""
    if charset is None:
        declared = _XML_ENCODING.match(body[:200])
        charset = declared.group(1).decode() if declared else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def retry_after_s(value: str | None, now: datetime, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), else ``default``."""
    if value is None:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def session() -> aiohttp.ClientSession:
    """The HTTP client of a connector process (proxies from the environment, like websockets)."""
    return aiohttp.ClientSession(trust_env=True, raise_for_status=False)


async def get_text(
    client: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    timeout_s: float,
    *,
    ok: tuple[int, ...] = (200,),
    retry_default_s: float = 1.0,
) -> tuple[int, str]:
    """GET ``url``: (status, text). HTTP 429 raises RateLimited; other statuses not in ``ok``
    raise VenueError; network failures raise aiohttp.ClientError or TimeoutError.
    """
    async with client.get(
        url, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout_s)
    ) as response:
        if response.status == 429:
            wait = retry_after_s(response.headers.get("Retry-After"), utcnow(), retry_default_s)
            raise RateLimited(f"rate limited (HTTP 429, retry after {wait:g} s)", wait)
        if response.status not in ok:
            raise VenueError(f"the server answered HTTP {response.status}")
        body = await response.read()
        return response.status, decode_body(body, response.charset)
