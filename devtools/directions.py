"""Many configured directions on the simulator: synthetic assets, and a stack serving them.

The integration tests run 64 directions this way and the scaling benchmark 256:
``synthetic_directions(n)`` names them, ``start_stack`` runs the simulator (pricing them;
every venue lists them by its naming rule), the connector, a worker and the API, and
``venues_serving`` reads back which venues serve each direction through the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from devtools.environment import clean_env
from devtools.processes import Proc, Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.venues import EXCHANGERS, VENUES


def synthetic_assets(count: int) -> list[str]:
    """``SYN0000``, ``SYN0001``, ...: assets only the simulator knows (default price levels)."""
    return [f"SYN{i:04d}" for i in range(count)]


def synthetic_directions(count: int) -> tuple[str, ...]:
    """``count`` directions: X-USD for three quarters as many assets, X-RUB for a quarter
    of them (derived through the USD-RUB reference)."""
    rub = count // 4
    assets = synthetic_assets(count - rub)
    return (*(f"{a}-USD" for a in assets), *(f"{a}-RUB" for a in assets[:rub]))


@dataclass
class DirectionsStack:
    """A simulator, connector, worker and API serving the given directions."""

    directions: tuple[str, ...]
    env: dict[str, str]
    api: str
    simulator: Proc
    connector: Proc
    worker: Proc


def start_stack(
    procs: Procs,
    kafka: str,
    directions: Sequence[str],
    *,
    venues: Sequence[str] = VENUES,
    unlisted: Sequence[str] = (),
    tick_s: float = 0.25,
    **settings: str,
) -> DirectionsStack:
    """Start the simulator for ``directions`` (``unlisted`` assets listed by no venue), then
    the connector, a worker and the API on topics of their own; returns once the worker is
    ready (the API follows by itself)."""
    ports = procs.directory / f"simulator-{uuid.uuid4().hex[:6]}.json"
    joined = ",".join(directions)
    argv = ["simulate", "--ports-file", str(ports), "--tick-interval", f"{tick_s:g}"]
    argv += ["--directions", joined, "--seed", "7"]
    if unlisted:
        argv += ["--unlisted", *unlisted]
    simulator = procs.start("simulate", argv, clean_env())
    wait_until(ports.exists, 30, "the simulator to listen")
    sim_env: dict[str, str] = json.loads(ports.read_text())["env"]
    port = free_port()
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        RATES_TOPIC_PREFIX=f"d{uuid.uuid4().hex[:10]}.",
        RATES_STATE_DIR=str(procs.directory / "state"),
        API_PORT=str(port),
        RATES_DIRECTIONS=joined,
        RATES_VENUES=",".join(venues),
        COINGECKO_POLL_INTERVAL_S="1",
        CBR_POLL_INTERVAL_S="1",
        **sim_env,
        **settings,
    )
    connector = procs.start("connect", ["connect"], env)
    worker = procs.start("worker", ["worker"], env)
    worker.wait_for("worker ready in", 90)
    procs.start("api", ["api"], env)
    api = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{api}/healthz").status_code == 200, 30, "the API")
    return DirectionsStack(tuple(directions), env, api, simulator, connector, worker)


def get_json(url: str, **params: Any) -> Any:
    """A JSON answer with numbers as Decimal (exact digits); HTTPError on a non-2xx status."""
    response = httpx.get(url, params=params, timeout=10)
    response.raise_for_status()
    return json.loads(response.text, parse_float=Decimal)


def venues_serving(api: str) -> dict[str, set[str]]:
    """Direction -> the venues with a fresh quote of it now (GET /api/v2/courses)."""
    try:
        body = get_json(f"{api}/api/v2/courses")
    except httpx.HTTPError:
        return {}
    found: dict[str, set[str]] = {}
    for course in body["courses"]:
        venues = {q["venue"] for q in course["quotes"]}
        if course["venue"] is not None and not course["stale"]:
            venues.add(course["venue"])
        found[course["direction"]] = venues
    return found


def wait_served(
    api: str, expected: Mapping[str, set[str]], timeout_s: float
) -> dict[str, set[str]]:
    """Wait until every direction is served by (at least) its expected venues."""
    missing: dict[str, set[str]] = dict(expected)

    def done() -> dict[str, set[str]] | None:
        seen = venues_serving(api)
        missing.clear()
        missing.update(
            {
                d: want - seen.get(d, set())
                for d, want in expected.items()
                if want - seen.get(d, set())
            }
        )
        return None if missing else seen

    try:
        return wait_until(done, timeout_s, "every direction from its venues")
    except AssertionError as exc:
        shown = ", ".join(f"{d}: {sorted(v)}" for d, v in list(missing.items())[:5])
        raise AssertionError(f"{exc}; still missing {shown}") from None


#: The exchangers the simulator runs (every one lists every synthetic asset).
SIMULATED_EXCHANGERS: tuple[str, ...] = EXCHANGERS
