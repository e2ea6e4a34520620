"""The venue registry lists exactly the venue modules, and the names the contract declares."""

from __future__ import annotations

import pkgutil

import connectors.venues
from connectors import registry
from connectors.simulator.server import SIMULATED
from schemas.venues import VENUES


def test_registry_matches_the_venue_modules() -> None:
    modules = {m.name for m in pkgutil.iter_modules(connectors.venues.__path__) if m.name != "base"}
    assert set(registry.VENUES) == modules


def test_registry_matches_the_topic_contract_and_the_simulator() -> None:
    assert tuple(registry.VENUES) == VENUES
    assert set(SIMULATED) == set(registry.VENUES)


def test_every_venue_declares_a_url_setting_and_markets() -> None:
    from connectors.settings import ConnectorSettings

    for venue in registry.VENUES.values():
        assert venue.url_setting in ConnectorSettings.model_fields
        assert venue.markets
        assert all(m.count("-") == 1 for m in venue.markets.values())
