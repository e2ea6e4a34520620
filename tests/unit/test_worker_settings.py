"""The worker reads its own settings: the polled sources' intervals set its silence limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import registry
from connectors.settings import ConnectorSettings
from connectors.venues.base import PollingVenue
from pipeline.settings import WorkerSettings
from schemas.settings import load


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    for name in ("COINGECKO_POLL_INTERVAL_S", "CBR_POLL_INTERVAL_S"):
        monkeypatch.delenv(name, raising=False)


def test_a_configured_poll_interval_sets_the_workers_silence_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = load(WorkerSettings).policy()
    assert default.silence_limit_s("coingecko") == 60.0
    assert default.silence_limit_s("cbr") == 1200.0

    monkeypatch.setenv("COINGECKO_POLL_INTERVAL_S", "45")
    monkeypatch.setenv("CBR_POLL_INTERVAL_S", "120")
    policy = load(WorkerSettings).policy()
    assert policy.silence_limit_s("coingecko") == 90.0
    assert policy.silence_limit_s("cbr") == 240.0
    # The connector polls at the pace the worker expects.
    connector = load(ConnectorSettings)
    for name, limit in (("coingecko", 90.0), ("cbr", 240.0)):
        venue = registry.get(name)
        assert isinstance(venue, PollingVenue)
        assert venue.silence_limit(connector.interval_s(venue)) == limit


def test_websocket_venues_keep_their_own_silence_limit() -> None:
    policy = load(WorkerSettings).policy()
    for name, venue in registry.VENUES.items():
        if not isinstance(venue, PollingVenue):
            assert policy.silence_limit_s(name) == venue.silence_limit_s


def test_the_policy_takes_every_default_from_the_settings() -> None:
    settings = load(WorkerSettings)
    policy = settings.policy()
    assert policy.max_age_s == settings.rates_max_age_s
    assert policy.hysteresis_s == settings.rates_hysteresis_s
    assert policy.max_deviation == settings.rates_max_deviation
    assert policy.status_timeout_s == settings.rates_status_timeout_s
    assert policy.reference_priority == settings.rates_reference_priority
    assert policy.reference_max_age_s == {"cbr": settings.rates_cbr_max_age_s}
