"""Settings of ``rates up``: everything its children need, checked before any starts."""

from __future__ import annotations

from api.settings import ApiSettings
from connectors.settings import ConnectorSettings
from pipeline.settings import HistorySettings, WorkerSettings


class StackSettings(ConnectorSettings, WorkerSettings, HistorySettings, ApiSettings):
    """Every setting of every process of the stack."""
