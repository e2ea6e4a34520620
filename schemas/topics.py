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
HISTORY_GROUP = "rates-history"
#: Added to RATES_TOPIC_PREFIX by default for a replay, so it never mixes with live data.
REPLAY_PREFIX = "replay."

#: Key of the record on rates.latest that names the active venue (the v1 choice).
ACTIVE_KEY = "*"


def check_prefix(prefix: str) -> str:
    """Return the prefix unchanged, or raise ConfigError naming RATES_TOPIC_PREFIX."""
    if not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"RATES_TOPIC_PREFIX={prefix!r} is invalid: use at most 100 of A-Z a-z 0-9 . _ -"
        )
    return prefix


_DAY_MS = 86_400_000

#: Topic configs for real Kafka (Tansu accepts them and ignores them): the small state topics
#: are compacted (a consumer needs the latest record per key), the streams are kept 7 days.
STATE_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
STREAM_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}


def topic_config(name: str) -> dict[str, str]:
    """The configs a topic (full name, any prefix) is created with."""
    state = name.endswith((LATEST, VENUES_STATUS, REFERENCE))
    return dict(STATE_CONFIG if state else STREAM_CONFIG)


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

    @property
    def history_group(self) -> str:
        """The consumer group of the history writer (its own, apart from the Faust app)."""
        return f"{self.prefix}{HISTORY_GROUP}"

    def all(self, venues: Iterable[str]) -> list[str]:
        """Every topic the pipeline uses for these venues, in a stable order."""
        return [
            *(self.raw(v) for v in sorted(set(venues))),
            self.normalized,
            self.latest,
            self.venues_status,
            self.reference,
        ]
