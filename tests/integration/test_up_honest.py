"""`rates up` says "serving" only when rates are served: with no reachable venue it says what
is missing instead (and /readyz agrees)."""

from __future__ import annotations

from pathlib import Path

import httpx

from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.embedded import free_port


def test_up_without_a_reachable_venue_does_not_claim_to_serve(
    state_dir: Path, procs: Procs
) -> None:
    api, closed = free_port(), free_port()
    env = clean_env(
        RATES_STATE_DIR=str(state_dir),
        API_PORT=str(api),
        RATES_VENUES="binance",
        BINANCE_WS_URL=f"ws://127.0.0.1:{closed}",
        BINANCE_API_URL=f"http://127.0.0.1:{closed}",
        CONNECTOR_METRICS_PORT=str(free_port()),
        WORKER_METRICS_PORT=str(free_port()),
        HISTORY_METRICS_PORT=str(free_port()),
        RATES_BROKER_PORT=str(free_port()),
        RATES_POSTGRES_PORT=str(free_port()),
        STACK_METRICS_PORT=str(free_port()),
    )
    up = procs.start("up", ["up"], env)

    def told() -> str | None:
        text = up.output()
        return text if "not serving rates at" in text else None

    text = wait_until(told, 90, "rates up to say it does not serve rates")
    assert "serving http" not in text, text
    ready = httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["reason"]
    v1 = httpx.get(f"http://127.0.0.1:{api}/api/v1/courses", timeout=5)
    assert v1.status_code == 503
