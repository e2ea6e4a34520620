"""What the load test's users ask for, importable without locust (which patches on import).

The locustfile (tests/load/locustfile.py) sends these; `make loadtest` (benchmarks/loadtest.py)
waits until the stack it starts serves them, and the locustfile's smoke test publishes them.
"""

from __future__ import annotations

from connectors.registry import VENUES
from connectors.venues.base import WebsocketVenue
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.venues import EXCHANGERS as ALL_EXCHANGERS

#: The ``exchanger`` values asked for: venues with a websocket feed (always fresh on the
#: demo stack, unlike the polled ones), most preferred first.
EXCHANGERS: tuple[str, ...] = tuple(
    name for name in ALL_EXCHANGERS if isinstance(VENUES[name], WebsocketVenue)
)
#: The ``direction`` values asked for.
DIRECTIONS: tuple[str, ...] = DEFAULT_DIRECTIONS
#: The directions asked for together with ``exchanger``.
EXCHANGER_DIRECTIONS: tuple[str, ...] = ("BTC-USD", "ETH-USD")
