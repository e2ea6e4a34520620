"""The vertical slice on real processes: simulator -> connector -> worker -> API."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator

from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas import schema_files
from schemas.topics import Topics
from tests.integration.harness import (
    SimHandle,
    api_base,
    courses,
    pipeline_env,
    read_topics,
    unique_prefix,
)


def test_rates_flow_from_the_simulator_to_the_api(
    kafka: str, simulator: SimHandle, procs: Procs
) -> None:
    env = pipeline_env(kafka, procs, RATES_VENUES="binance", **simulator.env)
    base = api_base(env)
    procs.start("connect", ["connect", "binance"], env)
    worker = procs.start("worker", ["worker"], env)

    # A fresh consumer group is ready in a few seconds on Tansu (short session timeout).
    ready_log = worker.wait_for("worker ready in", 60)
    ready_s = float(ready_log.split("worker ready in ")[1].split(" s")[0])
    print(f"worker ready in {ready_s} s")
    # Started once the topics exist (the feed would notice a topic created later, after up
    # to 5 s: common/follower.py), so the API serves as soon as the worker publishes.
    procs.start("api", ["api"], env)

    # Binance quotes USDT markets: BTC and ETH count as USD, USDT-USD is USDC-USDT inverted;
    # without a USD-RUB reference running there is no RUB rate.
    usd = ["BTC-USD", "ETH-USD", "USDTTRC-USD", "USDTERC-USD"]

    def served() -> dict[str, Any] | None:
        status, body = courses(base)
        return body if status == 200 and len(body["courses"]) == len(usd) else None

    body = wait_until(served, 60, "the API to serve the USD directions")
    assert body["exchanger"] == "binance"
    assert [c["direction"] for c in body["courses"]] == usd
    assert all(isinstance(c["value"], Decimal) and c["value"] > 0 for c in body["courses"])

    # A price set in the simulator shows up at the API with its exact digits.
    simulator.pin("BTC-USDT", "12345.67890123")
    pinned_at = time.monotonic()
    try:

        def pinned() -> Decimal | None:
            _, got = courses(base, direction="btc-usd")
            value: Decimal = got["courses"][0]["value"]
            return value if value == Decimal("12345.67890123") else None

        wait_until(pinned, 10, "the pinned price at the API", every_s=0.01)
        print(f"price change visible after {time.monotonic() - pinned_at:.3f} s")
    finally:
        simulator.release("BTC-USDT")

    # And values keep changing as the simulator ticks.
    seen = set()
    for _ in range(20):
        _, got = courses(base, direction="ETH-USD")
        seen.add(got["courses"][0]["value"])
        time.sleep(0.2)
    assert len(seen) > 1

    # Every topic carries records that match their published JSON Schema.
    topics = Topics(env["RATES_TOPIC_PREFIX"])
    for topic in (topics.raw("binance"), topics.normalized, topics.latest, topics.venues_status):
        values = [r.value for r in read_topics(kafka, [topic])][-200:]
        assert values, topic
        validator = Draft202012Validator(schema_files.for_topic(topic, topics.prefix))
        for value in values:
            validator.validate(orjson.loads(value))

    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'rates_api_requests_total{route="/api/v1/courses",status="200"}' in metrics


def test_api_errors(kafka: str, procs: Procs) -> None:
    """Before any rate exists the API says so (503 + Retry-After); bad input is a 422."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        RATES_TOPIC_PREFIX=unique_prefix(),
        API_PORT=str(port),
    )
    procs.start("api", ["api"], env)
    wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30, "the API")
    response = httpx.get(f"{base}/api/v1/courses")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "no rates yet" in response.json()["detail"]
    response = httpx.get(f"{base}/api/v1/courses", params={"exchanger": "mtgox"})
    assert response.status_code == 422
    assert "binance" in response.json()["detail"]
    response = httpx.get(f"{base}/api/v1/courses", params={"direction": "BTC-EUR"})
    assert response.status_code == 422
    assert "BTC-USD" in response.json()["detail"]
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert "snapshot not loaded" in ready.json()["reason"]
