"""The reliability tier: every test here is marked ``chaos`` (``pytest -m chaos`` runs it)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos" in str(item.path):
            item.add_marker(pytest.mark.chaos)
