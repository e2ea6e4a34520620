"""How the embedded broker's fetch slows down as a partition fills with record batches.

Tansu (the memory engine) finds a fetch's offset by reading a partition's batches from the
first, so each fetch costs more the more batches the partition holds. The pipeline writes
small batches (a tick or two each, to keep latency low), so a partition collects tens of
thousands of them in minutes. The benchmark fills one partition with single-record batches
in steps and, at each step, times ``ROUNDS`` produce -> consume round trips at the tail
(a consumer waiting at the end, as the worker and the API do) and the broker's CPU meanwhile.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.embedded import start_tansu

#: Batches in the partition at each step.
STEPS = (1_000, 10_000, 30_000, 60_000)
ROUNDS = 30
RECORD = b"r" * 340  # about a rates.normalized record


async def _measure() -> list[dict[str, Any]]:
    tansu = start_tansu()
    broker = psutil.Process(tansu.popen.pid)
    # One record per batch, as the pipeline's producers mostly send (linger 5 ms, a few ticks/s).
    producer = AIOKafkaProducer(bootstrap_servers=tansu.address, linger_ms=0, max_batch_size=512)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=tansu.address, fetch_max_wait_ms=50, enable_auto_commit=False
    )
    tp = TopicPartition("fetch-cost", 0)
    rows: list[dict[str, Any]] = []
    try:
        await producer.start()
        await consumer.start()
        batches = 0
        for target in STEPS:
            sends = [
                await producer.send(tp.topic, RECORD, partition=0) for _ in range(target - batches)
            ]
            await asyncio.gather(*sends)
            batches = target
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            await consumer.getmany(timeout_ms=100)
            trips: list[float] = []
            cpu0 = sum(broker.cpu_times()[:2])
            started = time.monotonic()
            for _ in range(ROUNDS):
                sent = time.monotonic()
                await producer.send_and_wait(tp.topic, RECORD, partition=0)
                while not any((await consumer.getmany(timeout_ms=1000)).values()):
                    pass
                trips.append((time.monotonic() - sent) * 1000)
            batches += ROUNDS
            cpu = (sum(broker.cpu_times()[:2]) - cpu0) / (time.monotonic() - started)
            rows.append(
                {
                    "batches": batches,
                    "tail_p50_ms": round(statistics.median(trips), 1),
                    "tail_max_ms": round(max(trips), 1),
                    "broker_cpu_cores": round(cpu, 2),
                    "broker_rss_mb": round(broker.memory_info().rss / 2**20),
                }
            )
    finally:
        await consumer.stop()
        await producer.stop()
        tansu.stop()
    return rows


def run() -> dict[str, Any]:
    return {"rounds": ROUNDS, "rows": asyncio.run(_measure())}


def report(result: dict[str, Any]) -> str:
    lines = [f"## fetch cost (one partition, single-record batches; {result['rounds']} rounds)"]
    for row in result["rows"]:
        lines.append(
            f"{row['batches']:>7,} batches: produce -> tail consumer p50 {row['tail_p50_ms']} ms, "
            f"max {row['tail_max_ms']} ms; broker CPU {row['broker_cpu_cores']} cores, "
            f"RSS {row['broker_rss_mb']} MB"
        )
    return "\n".join(lines)
