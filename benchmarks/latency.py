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


def run() -> dict[str, Any]:
    rng = random.Random(1)
    latencies: list[float] = []
    with demo_stack() as stack, httpx.Client(timeout=5) as client:
        url = f"{stack.base}/api/v1/courses"
        for i in range(SAMPLES):
            value = Decimal(f"{90000 + i}.{rng.randrange(10**8):08d}")
            # One Binance trade at the new price; every venue keeps ticking in the background.
            sent = client.post(
                f"{stack.control}/_sim/price/BTC-USDT",
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
        worker_ready = stack.logged_seconds(r"worker ready in ([0-9.]+) s")
    return {
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "serving_after_s": round(stack.serving_after_s, 1),
        "worker_ready_s": worker_ready,
        "targets": {"p50_ms": 50, "p99_ms": 250, "serving_after_s": 60, "worker_ready_s": 10},
    }


def report(result: dict[str, Any]) -> str:
    t = result["targets"]
    return "\n".join(
        [
            "## tick -> API latency (simulator frame to /api/v1/courses, three Kafka hops)",
            f"samples {result['samples']}: p50 {result['p50_ms']} ms (target < {t['p50_ms']}), "
            f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms (target < {t['p99_ms']}), "
            f"max {result['max_ms']} ms",
            f"demo stack serving {result['serving_after_s']} s after start "
            f"(target < {t['serving_after_s']}); worker ready in {result['worker_ready_s']} s "
            f"on a fresh group (target < {t['worker_ready_s']})",
        ]
    )
