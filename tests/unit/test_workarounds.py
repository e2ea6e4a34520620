"""The third-party workarounds: what they change, applied once, and loud when a library moved."""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline import workarounds
from pipeline.workarounds import (
    FAUST_FETCH_MAX_WAIT_MS,
    LibraryChanged,
    lower_fetch_max_wait,
    make_producer_idempotent,
)


def faust_app() -> faust.App:
    # Nothing connects: the consumer is only built, never started.
    return faust.App("workaround-test", broker="kafka://127.0.0.1:1", web_enabled=False)


async def fetch_wait(app: faust.App) -> Any:
    """The wait of the consumer Faust's worker would start, built through Faust's own path."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    assert isinstance(thread, faust_aiokafka.AIOKafkaConsumerThread)
    try:
        consumer = thread._create_worker_consumer(app.transport)  # type: ignore[arg-type]
        await consumer.stop()
        return consumer._fetch_max_wait_ms
    finally:
        thread.thread_loop.close()  # the consumer thread's own loop, never run here


async def test_the_worker_consumer_gets_the_configured_fetch_wait() -> None:
    app = faust_app()
    lower_fetch_max_wait(app, 10)
    assert await fetch_wait(app) == 10


async def test_a_second_call_changes_nothing() -> None:
    app = faust_app()
    lower_fetch_max_wait(app, 25)
    patched = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    lower_fetch_max_wait(app, 25)
    assert faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer is patched
    # Wrapped twice, the second wrapper would find 25 where Faust's 1500 should be, and raise.
    assert await fetch_wait(app) == 25


async def test_an_app_that_asked_for_nothing_keeps_fausts_wait() -> None:
    lower_fetch_max_wait(faust_app(), 10)
    assert await fetch_wait(faust_app()) == FAUST_FETCH_MAX_WAIT_MS


async def test_a_consumer_without_the_private_attribute_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[aiokafka.AIOKafkaConsumer] = []

    class Renamed(aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
        """An aiokafka that keeps the fetch wait under another name."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._max_wait = self._fetch_max_wait_ms
            del self._fetch_max_wait_ms
            built.append(self)

    # The driver builds its consumer as ``aiokafka.AIOKafkaConsumer(...)``.
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", Renamed)
    app = faust_app()
    lower_fetch_max_wait(app, 10)
    with pytest.raises(LibraryChanged, match=r"_fetch_max_wait_ms=None.*aiokafka 0\.14\.0"):
        await fetch_wait(app)
    for consumer in built:
        await consumer.stop()


def test_a_faust_without_the_patched_method_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer")
    with pytest.raises(
        LibraryChanged, match=r"no _create_worker_consumer.*faust-streaming 0\.15\.3"
    ):
        lower_fetch_max_wait(faust_app(), 10)


def test_versions_name_both_libraries() -> None:
    assert workarounds.versions() == "faust-streaming 0.15.3, aiokafka 0.14.0"


async def builds_idempotent(app: faust.App) -> bool:
    """Whether the aiokafka producer Faust builds for ``app`` is idempotent (never started)."""
    producer = app.producer._new_producer()  # type: ignore[attr-defined]
    assert isinstance(producer, aiokafka.AIOKafkaProducer)
    await producer.stop()
    # aiokafka keeps a transaction manager (producer id, sequence numbers) only when idempotent.
    return producer._txn_manager is not None


async def test_an_idempotent_app_builds_an_idempotent_producer() -> None:
    app = faust_app()
    make_producer_idempotent(app)
    make_producer_idempotent(app)  # applied once, whatever the number of calls
    assert await builds_idempotent(app)


async def test_an_app_that_asked_for_nothing_keeps_fausts_producer() -> None:
    make_producer_idempotent(faust_app())
    assert not await builds_idempotent(faust_app())


def test_a_faust_without_the_patched_producer_method_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(faust_aiokafka.Producer, "_settings_extra")
    with pytest.raises(LibraryChanged, match=r"no _settings_extra.*faust-streaming 0\.15\.3"):
        make_producer_idempotent(faust_app())
