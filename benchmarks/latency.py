"""Tick-to-API latency: a frame leaves the simulator -> its value is served at /api/v1/courses.

Three Kafka hops (connector -> normalize agent -> latest-rate agent -> API) on the demo
stack. The simulator sends a trade with a new price at once and reports when it left; the
benchmark polls the API over keep-alive (about 1 ms per request) until the price shows.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal
from typing import Any

import httpx

from benchmarks.stack import demo_stack

SAMPLES = 300


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def freshness(client: httpx.Client, base: str, duration_s: float = 20.0) -> list[float]:
    """Ages (ms) of every direction's rate served by /api/v2/courses, polled for a while.

    Websocket venues tick all the time: the rate served must never be older than 1 s.
    """
    ages: list[float] = []
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        body = client.get(f"{base}/api/v2/courses").json()
        ages += [c["age_ms"] for c in body["courses"] if c["age_ms"] is not None]
        time.sleep(0.05)
    return ages


def tick_latencies(
    client: httpx.Client, base: str, control: str, samples: int, rng: random.Random
) -> list[float]:
    """Milliseconds from a Binance trade leaving the simulator to its price at /api/v1/courses."""
    latencies: list[float] = []
    url = f"{base}/api/v1/courses"
    # Stay within a hair of the market: a price far from the other venues' is an
    # outlier the pipeline rightly refuses to serve.
    market = Decimal(client.get(f"{control}/_sim/state").json()["prices"]["BTC-USDT"])
    for _ in range(samples):
        value = market.quantize(Decimal(1)) + Decimal(f"0.{rng.randrange(10**8):08d}")
        # One Binance trade at the new price; every venue keeps ticking in the background.
        sent = client.post(
            f"{control}/_sim/price/BTC-USDT",
            json={"value": str(value), "send": True, "venues": ["binance"]},
        ).json()["sent_at"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # Binance's price is the pinned one (the other venues add their offsets).
            body = client.get(url, params={"direction": "BTC-USD", "exchanger": "binance"}).text
            if str(value) in body:
                latencies.append((time.time() - sent) * 1000)
                break
        else:
            raise RuntimeError(f"value {value} never reached the API")
        time.sleep(0.02)
    client.delete(f"{control}/_sim/price/BTC-USDT")
    return latencies


def run() -> dict[str, Any]:
    rng = random.Random(1)
    with demo_stack() as stack, httpx.Client(timeout=5) as client:
        latencies = tick_latencies(client, stack.base, stack.control, SAMPLES, rng)
        ages = freshness(client, stack.base)
        worker_ready = stack.logged_seconds(r"worker ready in ([0-9.]+) s")
    return {
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "freshness_samples": len(ages),
        "age_p99_ms": percentile(ages, 0.99),
        "age_max_ms": max(ages),
        "serving_after_s": round(stack.serving_after_s, 1),
        "worker_ready_s": worker_ready,
        "targets": {
            "p50_ms": 50,
            "p99_ms": 250,
            "age_max_ms": 1000,
            "serving_after_s": 60,
            "worker_ready_s": 10,
        },
    }


def report(result: dict[str, Any]) -> str:
    t = result["targets"]
    return "\n".join(
        [
            "## tick -> API latency (simulator frame to /api/v1/courses, three Kafka hops)",
            f"samples {result['samples']}: p50 {result['p50_ms']} ms (target < {t['p50_ms']}), "
            f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms (target < {t['p99_ms']}), "
            f"max {result['max_ms']} ms",
            f"age of the served rates over {result['freshness_samples']} samples of every "
            f"direction (/api/v2/courses): p99 {result['age_p99_ms']} ms, max "
            f"{result['age_max_ms']} ms (target: never above {t['age_max_ms']})",
            f"demo stack serving {result['serving_after_s']} s after start "
            f"(target < {t['serving_after_s']}); worker ready in {result['worker_ready_s']} s "
            f"on a fresh group (target < {t['worker_ready_s']})",
        ]
    )
