"""Settings of ``rates up``: everything its children need, checked before any starts."""

from __future__ import annotations

from pydantic import Field

from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import HistorySettings, WorkerSettings


class StackSettings(ConnectorSettings, WorkerSettings, HistorySettings, ApiSettings):
    """Every setting of every process of the stack, and how many workers it runs."""

    rates_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Faust worker processes `rates up` runs in one consumer group; their "
        "metrics ports follow WORKER_METRICS_PORT",
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
