"""Every Kafka topic name of the pipeline, with the optional prefix that isolates runs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.errors import ConfigError

# Kafka's legal topic characters; the prefix must keep names legal.
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]{0,100}$")

RAW = "ticks.raw."
NORMALIZED = "rates.normalized"
LATEST = "rates.latest"
VENUES_STATUS = "venues.status"
REFERENCE = "rates.reference"
APP_ID = "rates-pipeline"

#: Key of the record on rates.latest that names the active venue (the v1 choice).
ACTIVE_KEY = "*"


def check_prefix(prefix: str) -> str:
    """Return the prefix unchanged, or raise ConfigError naming RATES_TOPIC_PREFIX."""
    if not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"RATES_TOPIC_PREFIX={prefix!r} is invalid: use at most 100 of A-Z a-z 0-9 . _ -"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one prefix (empty for live data)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def raw(self, venue: str) -> str:
        return f"{self.prefix}{RAW}{venue}"

    @property
    def normalized(self) -> str:
        return f"{self.prefix}{NORMALIZED}"

    @property
    def latest(self) -> str:
        return f"{self.prefix}{LATEST}"

    @property
    def venues_status(self) -> str:
        return f"{self.prefix}{VENUES_STATUS}"

    @property
    def reference(self) -> str:
        """USD-RUB references (and venues' USDT-USD when converting): read by every worker."""
        return f"{self.prefix}{REFERENCE}"

    @property
    def app_id(self) -> str:
        """The Faust app id: its consumer group and internal topics follow the prefix."""
        return f"{self.prefix}{APP_ID}"

    def all(self, venues: Iterable[str]) -> list[str]:
        """Every topic the pipeline uses for these venues, in a stable order."""
        return [
            *(self.raw(v) for v in sorted(set(venues))),
            self.normalized,
            self.latest,
            self.venues_status,
            self.reference,
        ]
