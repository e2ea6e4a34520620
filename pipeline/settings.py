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
        default=30,
        ge=0,
        description="quotes and switches older than this (venue time) are deleted; 0 keeps all",
    )
    history_retention_interval_s: float = Field(
        default=3600, gt=0, description="how often the history writer applies the retention"
    )
    history_metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="Prometheus port of the history writer; 0: off"
    )
