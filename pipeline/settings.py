"""Settings of the worker process (``rates worker``): venues, policy, worker tuning."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from schemas.settings import CommaList, CommonSettings, check_venues, split_commas
from schemas.venues import EXCHANGERS


class WorkerSettings(CommonSettings):
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
        default=1.0,
        ge=0,
        description="each direction's table entry is written at most this often (Tansu never "
        "compacts the changelog, and recovery replays all of it)",
    )
    rates_usdt_as_usd: bool = Field(
        default=True, description="count a USDT quote as USD for BTC and ETH (market convention)"
    )
    rates_publish_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="rates.latest is republished at least this often"
    )
    worker_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Prometheus port of the worker; 0: off"
    )
    worker_session_timeout_s: float = Field(
        default=6.0,
        ge=2,
        le=90,
        description="Kafka group session timeout; Tansu makes every join take half of it",
    )

    @field_validator("rates_priority", "rates_reference_priority", mode="before")
    @classmethod
    def _split_priority(cls, value: Any) -> Any:
        return split_commas(value)

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
