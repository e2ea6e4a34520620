"""Settings of ``rates up``: everything its children need, checked before any starts."""

from __future__ import annotations

from pydantic import Field

from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import HistorySettings, WorkerSettings


class StackSettings(ConnectorSettings, WorkerSettings, HistorySettings, ApiSettings):
    """Every setting of every process of the stack, where the embedded services listen, how
    many workers run and how much memory the embedded broker may take."""

    rates_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Faust worker processes `rates up` runs in one consumer group; their "
        "metrics ports follow WORKER_METRICS_PORT",
    )
    rates_broker_port: int = Field(
        default=9092,
        ge=0,
        le=65535,
        description="port of the embedded broker (127.0.0.1), the same after every restart "
        "and recycle; 0: a free port at each start",
    )
    rates_postgres_port: int = Field(
        default=5433,
        ge=0,
        le=65535,
        description="port of the embedded PostgreSQL (127.0.0.1); 0: a free port at each start",
    )
    rates_simulator_port: int = Field(
        default=9211,
        ge=0,
        le=65535 - 16,
        description="first port of the venue simulator (--source simulator): one per venue, "
        "then its control API; 0: free ports at each start",
    )
    rates_simulator_tick_s: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="seconds between the venue simulator's ticks (--source simulator)",
    )
    rates_broker_max_mb: int = Field(
        default=2048,
        ge=32,
        description="RSS of the embedded broker (MB) at which `rates up` recycles it: a new "
        "broker on the same port, topics created, workers and history restarted (Tansu keeps "
        "every record in memory and has no retention)",
    )
    rates_broker_max_age_min: float = Field(
        default=5.0,
        ge=0,
        le=10080,
        description="minutes after which `rates up` recycles the embedded broker as at its "
        "memory cap; 0: never. Tansu reads a partition's record batches from the first on "
        "every fetch, so the pipeline slows down as the broker fills (README: Embedded "
        "components)",
    )
    stack_metrics_port: int = Field(
        default=9104,
        ge=0,
        le=65535,
        description="Prometheus port of the `rates up` supervisor (the broker's RSS, its "
        "recycles); 0: off",
    )


class ProductionSettings(StackSettings):
    """`rates production-local`: the production topology on this machine (nginx, Prometheus)."""

    production_nginx_port: int = Field(
        default=8080, ge=1, le=65535, description="port of nginx (127.0.0.1) in front of the APIs"
    )
    production_prometheus_port: int = Field(
        default=9090, ge=1, le=65535, description="port of Prometheus (127.0.0.1)"
    )
    production_api_replicas: int = Field(
        default=2, ge=1, le=8, description="`rates api` processes behind nginx (free ports)"
    )
    production_workers: int = Field(
        default=2, ge=1, le=16, description="Faust worker processes in one consumer group"
    )
