"""Shared test helpers: a hand-advanced clock and time builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.health import Policy
from pipeline.settings import WorkerSettings


class Clock:
    """A clock tests advance by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 24, 16, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def worker_policy(**settings: Any) -> Policy:
    """The failover policy of a worker with these settings, defaults for the rest.

    Built without reading the environment or .env, so a developer's shell cannot change it.
    """
    return WorkerSettings.model_construct(**settings).policy()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The reliability rows go to docs/reliability.json when asked and nothing failed."""
    from tests.reliability import REPORT

    if exitstatus == 0:
        REPORT.write()
