"""Settings of the worker process (``rates worker``): venues, policy, worker tuning."""

from __future__ import annotations

from pydantic import Field, field_validator

from connectors import registry
from connectors.venues.base import PollingVenue
from pipeline.health import Policy
from schemas.settings import CommaList, CommonSettings, PollSettings, check_venues
from schemas.venues import EXCHANGERS


class WorkerSettings(PollSettings):
    """What the pipeline normalizes and how it chooses a venue."""

    rates_priority: CommaList = Field(
        default=EXCHANGERS, description="exchanger preference, most preferred first"
    )
    rates_max_age_s: float = Field(
        default=60.0, gt=0, description="a quote older than this is stale (quiet symbols)"
    )
    rates_hysteresis_s: float = Field(
        default=10.0,
        ge=0,
        description="a recovered venue must stay healthy this long before it is preferred again",
    )
    rates_max_deviation: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="a quote further than this fraction from the median of the other fresh "
        "venues is excluded",
    )
    rates_warmup_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="at start, a direction's venue is chosen for good (and v1 answers without "
        "exchanger) once every enabled exchanger has quoted it or is down, or this long after "
        "its first quote: the first answer comes from the preferred venue",
    )
    rates_reference_priority: CommaList = Field(
        default=("coingecko", "cbr"),
        description="USD-RUB reference sources for X-RUB rates, most preferred first",
    )
    rates_cbr_max_age_s: float = Field(
        default=4 * 86400.0,
        gt=0,
        description="the CBR daily rate stays usable this long (weekends and holidays)",
    )
    rates_status_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="a venue whose last venues.status is older than this counts as down",
    )
    rates_table_write_interval_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="each direction's table entry is written at most this often, when its book "
        "changed (Tansu keeps the changelog in memory and never compacts it; a takeover replays "
        "all of it, then the quotes since the last commit)",
    )
    rates_publish_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="rates.latest is republished at least this often"
    )
    worker_metrics_port: int = Field(
        default=9110,
        ge=0,
        le=65535,
        description="Prometheus port of the worker (`rates up` with RATES_WORKERS: of the first, "
        "the others on the next ports up); 0: off",
    )
    worker_session_timeout_s: float = Field(
        default=4.0,
        ge=2,
        le=90,
        description="Kafka group session timeout; Tansu makes every join take half of it",
    )

    def silence_limits(self) -> dict[str, float]:
        """Each venue's silence limit (polled sources: twice their configured interval)."""
        limits = {}
        for name, venue in registry.VENUES.items():
            if isinstance(venue, PollingVenue):
                interval = self.poll_interval_s(venue.interval_setting)
                limits[name] = venue.silence_limit(interval)
            else:
                limits[name] = venue.silence_limit_s
        return limits

    def policy(self) -> Policy:
        """The failover policy these settings describe."""
        return Policy(
            directions=self.rates_directions,
            priority=self.rates_priority,
            max_age_s=self.rates_max_age_s,
            hysteresis_s=self.rates_hysteresis_s,
            max_deviation=self.rates_max_deviation,
            status_timeout_s=self.rates_status_timeout_s,
            silence_limits_s=self.silence_limits(),
            reference_priority=self.rates_reference_priority,
            reference_max_age_s={"cbr": self.rates_cbr_max_age_s},
            venues=tuple(v for v in self.rates_venues if v in EXCHANGERS),
            warmup_s=self.rates_warmup_s,
        )

    @field_validator("rates_reference_priority")
    @classmethod
    def _known_references(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("no USD-RUB reference source")
        return check_venues(value, "RATES_REFERENCE_PRIORITY")

    @field_validator("rates_priority")
    @classmethod
    def _known_priority(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_venues(value, "RATES_PRIORITY")


class HistorySettings(CommonSettings):
    """How the history writer (``rates history``) batches, retries and expires history."""

    history_batch_size: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="most records written to PostgreSQL in one transaction (bounds memory)",
    )
    history_flush_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="a partial batch is written after this long"
    )
    history_retry_cap_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="longest wait between writes while PostgreSQL is unreachable",
    )
    rates_history_retention_days: int = Field(
        default=1,
        ge=0,
        description="every quote is kept this many days (venue time), then its day's partition "
        "is dropped; 0 keeps all",
    )
    rates_history_rollup_retention_days: int = Field(
        default=365,
        ge=0,
        description="the 1-minute bars (per direction and venue) and the venue switches are kept "
        "this many days; 0 keeps all",
    )
    history_retention_interval_s: float = Field(
        default=3600, gt=0, description="how often the history writer applies the retention"
    )
    history_metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="Prometheus port of the history writer; 0: off"
    )
    history_session_timeout_s: float = Field(
        default=6.0,
        ge=2,
        le=30,
        description="Kafka group session timeout of the history writer; Tansu makes every "
        "join take half of it",
    )
