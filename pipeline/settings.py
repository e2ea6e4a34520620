"""Settings of the worker process (``rates worker``): venues, policy, worker tuning."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from schemas.settings import CommaList, CommonSettings, check_venues, split_commas
from schemas.venues import VENUES


class WorkerSettings(CommonSettings):
    """What the pipeline normalizes and how it chooses a venue."""

    rates_priority: CommaList = Field(
        default=VENUES, description="venue preference, most preferred first"
    )
    rates_max_age_s: float = Field(
        default=60.0, gt=0, description="a quote older than this is stale (quiet symbols)"
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

    @field_validator("rates_priority", mode="before")
    @classmethod
    def _split_priority(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("rates_priority")
    @classmethod
    def _known_priority(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_venues(value, "RATES_PRIORITY")
