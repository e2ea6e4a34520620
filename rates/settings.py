"""Settings of ``rates up``: everything its children need, checked before any starts."""

from __future__ import annotations

from pydantic import Field

from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import WorkerSettings


class StackSettings(ConnectorSettings, WorkerSettings, ApiSettings):
    """Every setting of every process of the stack, and how many workers it runs."""

    rates_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Faust worker processes `rates up` runs in one consumer group; their "
        "metrics ports follow WORKER_METRICS_PORT",
    )
