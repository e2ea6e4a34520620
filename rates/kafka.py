"""Broker checks done by entry points: wait until Kafka answers, create every topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schemas.errors import BrokerUnavailable, RatesError
from schemas.topics import topic_config

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


@contextlib.contextmanager
def _quiet_kafka() -> Iterator[None]:
    """aiokafka logs each failed attempt at ERROR; while waiting we report once ourselves."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def wait_for_broker(bootstrap: str, timeout_s: float) -> None:
    """Return once the broker answers; BrokerUnavailable (one line) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    announced = False
    with _quiet_kafka():
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            try:
                await asyncio.wait_for(admin.start(), timeout=5.0)
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                last = exc
            finally:
                await admin.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}: no Kafka broker answered within "
                    f"{timeout_s:g} s (KAFKA_CONNECT_TIMEOUT_S); last error: {last}"
                )
            if not announced and timeout_s >= 5:
                log.info("waiting up to %g s for Kafka at %s", timeout_s, bootstrap)
                announced = True
            # Soon after a start: clients reconnecting to a new broker may write to a topic
            # before it exists, and creating it then starts its partitions over.
            await asyncio.sleep(min(0.05, remaining))


async def ensure_topics(bootstrap: str, names: Sequence[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    Tansu gives auto-created topics 4 partitions and Faust refuses a table whose source has
    another count, so every topic is created explicitly with the configured count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name, partitions, 1, topic_configs=topic_config(name))
                    for name in missing
                ]
            )
            for topic, code, *rest in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    message = rest[0] if rest else ""
                    raise RatesError(f"cannot create topic {topic}: error {code} {message}")
            log.info("created topics: %s", ", ".join(missing))
        present = [n for n in names if n in existing]
        if present:
            for described in await admin.describe_topics(present):
                count = len(described.get("partitions", []))
                if count and count != partitions:
                    log.warning(
                        "topic %s has %d partitions, RATES_PARTITIONS is %d",
                        described.get("topic"),
                        count,
                        partitions,
                    )
        return missing
    finally:
        await admin.close()
