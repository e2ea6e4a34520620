"""The group-less follower on a real Tansu: the recent tail, a topic created later, caught up,
a replaced broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

from aiokafka import AIOKafkaProducer

from common.follower import Fetched, Follower
from devtools.embedded import start_tansu
from rates.embedded import free_port
from rates.kafka import ensure_topics
from tests.integration.harness import unique_prefix


async def test_the_tail_then_a_late_topic_then_caught_up(kafka: str) -> None:
    prefix = unique_prefix()
    early, late = f"{prefix}early", f"{prefix}late"
    await ensure_topics(kafka, [early], 2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for i in range(10):  # one record per batch: Tansu's end offsets are then exact
            await producer.send_and_wait(early, f"e{i}".encode(), partition=0)
        follower = Follower(
            kafka, {early: 3, late: 100}, name="test follower", fetch_max_wait_ms=10, recheck_s=0.2
        )
        seen: list[str] = []
        polls: list[Fetched] = []

        async def until(done: Callable[[], bool]) -> None:
            async for fetched in fetches:
                polls.append(fetched)
                seen.extend(r.value.decode() for r in fetched.records if r.value)
                if done():
                    return

        async with asyncio.timeout(60), aclosing(follower.fetches()) as fetches:
            await until(lambda: "e9" in seen)
            assert seen == ["e7", "e8", "e9"]  # the last 3 of the partition, not all 10
            assert polls[0].first
            # The late topic does not exist yet: never caught up, however long it waits.
            await until(lambda: len(polls) >= 5)
            assert not any(p.caught_up for p in polls)

            await ensure_topics(kafka, [late], 2)
            await producer.send_and_wait(late, b"l0", partition=1)
            await until(lambda: "l0" in seen and polls[-1].caught_up)
            # The early topic kept its position across the restart: nothing read twice.
            assert seen == ["e7", "e8", "e9", "l0"]

            await producer.send_and_wait(early, b"e10", partition=1)
            await until(lambda: "e10" in seen)
            assert seen[-1] == "e10" and polls[-1].caught_up
    finally:
        await producer.stop()


async def test_a_replaced_broker_is_noticed_and_its_topics_read_from_the_start(
    logs_dir: Path,
) -> None:
    """A new Tansu on the same port answers a fetch beyond its high-water mark with nothing:
    the follower notices, and reads the new topic from offset 0."""
    port = free_port()
    topic = "replaced"
    first = start_tansu(port, logs_dir / "replaced-1.log")
    bootstrap = first.address
    second = None
    try:
        await ensure_topics(bootstrap, [topic], 1)
        await _send(bootstrap, topic, [f"old{i}" for i in range(20)])
        follower = Follower(bootstrap, {topic: 100}, name="test follower", fetch_max_wait_ms=10)
        seen: list[str] = []
        polls: list[Fetched] = []

        async def until(done: Callable[[], bool]) -> None:
            async for fetched in fetches:
                polls.append(fetched)
                seen.extend(r.value.decode() for r in fetched.records if r.value)
                if done():
                    return

        async with asyncio.timeout(60), aclosing(follower.fetches()) as fetches:
            await until(lambda: "old19" in seen)
            first.popen.kill()
            first.popen.wait()
            second = start_tansu(port, logs_dir / "replaced-2.log")
            await ensure_topics(bootstrap, [topic], 1)
            await _send(bootstrap, topic, ["new0", "new1", "new2"])
            await until(lambda: "new2" in seen)
            assert any(p.replaced for p in polls)
            assert seen[-3:] == ["new0", "new1", "new2"]  # from offset 0 of the new topic
    finally:
        first.stop(grace_s=1)
        if second is not None:
            second.stop(grace_s=1)


async def _send(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value.encode())
    finally:
        await producer.stop()
