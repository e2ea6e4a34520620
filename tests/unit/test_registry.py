"""The venue registry lists exactly the venue modules, and the names the contract declares."""

from __future__ import annotations

import pkgutil

import connectors.venues
from connectors import registry
from connectors.simulator.server import SIMULATED
from connectors.venues.base import WebsocketVenue
from schemas.venues import EXCHANGERS, REFERENCES, VENUES


def test_registry_matches_the_venue_modules() -> None:
    shared = ("base", "naming")  # what every venue module uses, not a venue
    modules = {m.name for m in pkgutil.iter_modules(connectors.venues.__path__)} - set(shared)
    assert set(registry.VENUES) == modules


def test_registry_matches_the_topic_contract_and_the_simulator() -> None:
    assert tuple(registry.VENUES) == VENUES
    assert set(SIMULATED) == set(registry.VENUES)


def test_every_venue_declares_its_settings_and_markets() -> None:
    from connectors.settings import ConnectorSettings

    fields = ConnectorSettings.model_fields
    for venue in registry.VENUES.values():
        assert venue.url_setting in fields
        assert venue.markets
        assert all(m.count("-") == 1 for m in venue.markets.values())
        if isinstance(venue, WebsocketVenue):
            assert venue.rotate_setting is None or venue.rotate_setting in fields
            assert venue.symbol_check is not None, f"{venue.name}: no symbol check"
            assert venue.symbol_check.api_setting in fields
        else:
            assert venue.interval_setting in fields
            if venue.auth is not None:
                assert {venue.auth.key_setting, venue.auth.plan_setting} <= set(fields)


def test_markets_use_the_canonical_asset_codes() -> None:
    assets = {"BTC", "ETH", "USDT", "USDC", "USD", "RUB"}
    for venue in registry.VENUES.values():
        for market in venue.markets.values():
            assert set(market.split("-")) <= assets, (venue.name, market)


def test_references_are_venues_but_not_exchangers() -> None:
    assert "cbr" in VENUES and "cbr" in REFERENCES and "cbr" not in EXCHANGERS
    assert EXCHANGERS == ("binance", "kraken", "okx", "bybit", "coinbase", "coingecko")
