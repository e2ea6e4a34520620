"""Helpers for integration tests: the simulator's controls, topic readers and writers, answers.

Processes, clean environments and waiting are devtools' (shared with the benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.environment import clean_env
from devtools.processes import Procs
from rates.embedded import free_port
from schemas.records import Latest


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def pipeline_env(kafka: str, procs: Procs, **settings: str) -> dict[str, str]:
    """One test's processes: the broker, topics of their own, state in the test's directory,
    the API on a free port (see :func:`api_base`)."""
    return clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        RATES_TOPIC_PREFIX=unique_prefix(),
        RATES_STATE_DIR=str(procs.directory / "state"),
        API_PORT=str(free_port()),
        **settings,
    )


def api_base(env: Mapping[str, str]) -> str:
    """Where `rates api` started with ``env`` answers."""
    return f"http://127.0.0.1:{env['API_PORT']}"


@dataclass
class SimHandle:
    """The session's venue simulator: its connector settings and its control API."""

    env: dict[str, str]
    control: str

    def _post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.control}{path}", json=body or {}, timeout=5)
        response.raise_for_status()
        return response.json()

    def pin(self, market: str, value: str) -> None:
        self._post(f"/_sim/price/{market}", {"value": value})

    def release(self, market: str) -> None:
        httpx.delete(f"{self.control}/_sim/price/{market}", timeout=5).raise_for_status()

    def faults(self, venue: str, **changes: Any) -> None:
        self._post(f"/_sim/venues/{venue}/faults", changes)

    def action(self, venue: str, name: str) -> None:
        self._post(f"/_sim/venues/{venue}/actions/{name}")

    def state(self) -> Any:
        return httpx.get(f"{self.control}/_sim/state", timeout=5).json()


def read_ports_file(path: Path) -> SimHandle:
    data = json.loads(path.read_text())
    return SimHandle(env=data["env"], control=data["control"])


class LatestWatcher:
    """Follows rates.latest in a background thread: every record, with when it arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        import threading

        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[tuple[float, Latest]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def follow() -> None:
            while True:  # a consumer only knows the topics that existed when it started
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, group_id=None, fetch_max_wait_ms=10
                )
                await consumer.start()
                if consumer.partitions_for_topic(self.topic) or self._stop.is_set():
                    break
                # (aiokafka's stop() right after start() raises CancelledError: yield first)
                await asyncio.sleep(0.2)
                await consumer.stop()
            try:
                partitions = consumer.partitions_for_topic(self.topic) or set()
                consumer.assign([TopicPartition(self.topic, p) for p in partitions])
                await consumer.seek_to_end()
                while not self._stop.is_set():
                    batch = await consumer.getmany(timeout_ms=100)
                    now = time.monotonic()
                    with self._lock:
                        for records in batch.values():
                            self.records += [(now, Latest.from_json(r.value)) for r in records]
            finally:
                await consumer.stop()

        asyncio.run(follow())

    def since(self, moment: float) -> list[Latest]:
        return [record for _, record in self.records_since(moment)]

    def records_since(self, moment: float) -> list[tuple[float, Latest]]:
        """(arrival time, record) for every record that arrived at or after ``moment``."""
        with self._lock:
            return [(at, record) for at, record in self.records if at >= moment]

    def latest(self, direction: str) -> Latest | None:
        with self._lock:
            found = [r for _, r in self.records if r.direction == direction]
        return found[-1] if found else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def courses(base: str, **params: Any) -> tuple[int, Any]:
    """GET /api/v1/courses; the JSON body with numbers as Decimal (exact digits)."""
    response = httpx.get(f"{base}/api/v1/courses", params=params, timeout=5)
    return response.status_code, json.loads(response.text, parse_float=Decimal)


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text as {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def read_topics(bootstrap: str, topics: list[str], timeout_s: float = 30.0) -> list[Any]:
    """Every record now in these topics (from offset 0 to the high-water mark)."""
    return asyncio.run(_read_topics(bootstrap, topics, timeout_s))


async def _read_topics(bootstrap: str, topics: list[str], timeout_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        # The end is each partition's first known high-water mark (not end_offsets(), which
        # Tansu under-reports), so topics that keep growing are read up to a point too.
        ends: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                found.extend(messages)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if tp not in ends and highwater is not None:
                    ends[tp] = highwater
            if len(ends) == len(tps) and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            ):
                return found
        raise AssertionError(f"could not read {topics} to their end in {timeout_s:g} s")
    finally:
        await consumer.stop()


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    """Publish (topic, key, value) records and wait until the broker has them all."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            for topic, key, value in records:
                await producer.send(topic, key=key, value=value)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())
