"""What the demo stack keeps in the embedded broker: per topic msg/s and bytes/s, RSS growth.

Tansu keeps every record in memory and never deletes one, so its RSS grows with what the
pipeline writes. The benchmark runs `rates up --source simulator` (every venue simulated),
lets it warm up, samples the broker's RSS for ``BENCH_BROKER_S`` seconds (default 300), then
counts the records each topic received in that window (from the end offsets before and
after) and their mean key + value size (from a sample). The RSS growth per minute is the
slope of a least-squares line through the samples; RAM per message is that growth over the
messages of the window.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import defaultdict
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.stack import demo_stack

WARMUP_S = 60.0
SAMPLE_EVERY_S = 5.0
#: Records read back per partition to measure the mean record size.
SAMPLE = 200


def duration_s() -> float:
    return float(os.environ.get("BENCH_BROKER_S", "300"))


def broker_process(up_pid: int) -> psutil.Process:
    for child in psutil.Process(up_pid).children(recursive=False):
        cmd = child.cmdline()
        if cmd and cmd[0].endswith("/tansu"):
            return child
    raise RuntimeError("no embedded broker among the children of rates up")


async def _ends(bootstrap: str) -> dict[TopicPartition, int]:
    """Every partition's end offset now (Tansu under-reports it by its last batch at most)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def _mean_sizes(
    bootstrap: str, starts: dict[TopicPartition, int], counts: dict[TopicPartition, int]
) -> dict[str, float]:
    """Topic -> mean key + value bytes of (up to) SAMPLE records per partition from ``starts``
    (``counts``: how many each partition has from there).

    Reading a whole window back from Tansu takes longer than the window (a fetch returns a
    few batches): the counts come from the offsets, the sizes from a sample.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        wanted = {tp: min(SAMPLE, counts[tp]) for tp in starts}
        sizes: dict[str, list[int]] = defaultdict(list)
        taken: dict[TopicPartition, int] = defaultdict(int)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(taken[tp] < n for tp, n in wanted.items()):
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batch.items():
                for record in records[: wanted[tp] - taken[tp]]:
                    sizes[tp.topic].append(len(record.key or b"") + len(record.value or b""))
                    taken[tp] += 1
                if taken[tp] >= wanted[tp]:
                    consumer.pause(tp)
        return {topic: statistics.mean(found) for topic, found in sizes.items() if found}
    finally:
        await consumer.stop()


def run() -> dict[str, Any]:
    duration = duration_s()
    with demo_stack() as stack:
        broker = broker_process(stack.pid)
        bootstrap = next(
            arg.removeprefix("tcp://") for arg in broker.cmdline() if arg.startswith("tcp://")
        )
        time.sleep(WARMUP_S)
        first = asyncio.run(_ends(bootstrap))
        began = time.time()
        times: list[float] = []
        rss_mb: list[float] = []
        while time.time() - began <= duration:
            times.append(time.time() - began)
            rss_mb.append(broker.memory_info().rss / 2**20)
            time.sleep(SAMPLE_EVERY_S)
        ended = time.time()
        last = asyncio.run(_ends(bootstrap))
        grown = {tp: end - first.get(tp, 0) for tp, end in last.items() if end > first.get(tp, 0)}
        starts = {tp: first.get(tp, 0) for tp in grown}
        sizes = asyncio.run(_mean_sizes(bootstrap, starts, grown))
    elapsed = ended - began
    traffic: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for tp, count in grown.items():
        traffic[tp.topic][0] += count
        traffic[tp.topic][1] += count * sizes.get(tp.topic, 0.0)
    slope, _ = statistics.linear_regression(times, rss_mb)
    per_topic = {
        topic: {
            "msg_per_s": round(count / elapsed, 1),
            "bytes_per_s": round(size / elapsed),
            "bytes_per_msg": round(size / count) if count else 0,
        }
        for topic, (count, size) in sorted(traffic.items())
    }
    messages = sum(count for count, _ in traffic.values())
    payload = sum(size for _, size in traffic.values())
    growth_mb_min = slope * 60
    return {
        "duration_s": round(elapsed),
        "topics": per_topic,
        "msg_per_s": round(messages / elapsed, 1),
        "payload_bytes_per_s": round(payload / elapsed),
        "rss_start_mb": round(rss_mb[0], 1),
        "rss_end_mb": round(rss_mb[-1], 1),
        "rss_growth_mb_per_min": round(growth_mb_min, 2),
        "ram_bytes_per_msg": round(growth_mb_min * 2**20 / 60 / (messages / elapsed))
        if messages
        else None,
        "rss_growth_mb_per_day": round(growth_mb_min * 60 * 24),
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"## the embedded broker on the demo stack ({result['duration_s']} s after a "
        f"{WARMUP_S:g} s warm-up)",
        f"{'topic':<40} {'msg/s':>8} {'B/s':>9} {'B/msg':>7}",
    ]
    for topic, t in result["topics"].items():
        lines.append(
            f"{topic:<40} {t['msg_per_s']:>8} {t['bytes_per_s']:>9} {t['bytes_per_msg']:>7}"
        )
    lines += [
        f"{'all':<40} {result['msg_per_s']:>8} {result['payload_bytes_per_s']:>9}",
        f"broker RSS {result['rss_start_mb']} -> {result['rss_end_mb']} MB: "
        f"+{result['rss_growth_mb_per_min']} MB/min (about {result['rss_growth_mb_per_day']} MB "
        f"a day), {result['ram_bytes_per_msg']} B of RAM per message",
    ]
    return "\n".join(lines)
