"""Every workaround of a third-party library, in one place: applied once, loud when it breaks.

Each one depends on a library's internals, which is why faust-streaming and aiokafka are
pinned exactly (pyproject.toml). When an upgrade moves what a workaround patches, it raises
:class:`LibraryChanged` naming the versions instead of silently doing nothing; its unit test
(tests/unit/test_workarounds.py) fails first.

Workarounds of the *broker's* semantics (Tansu's slow group joins, its under-reporting
``ListOffsets``) are settings of the code that meets them, not patches: they are not here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from schemas.errors import RatesError

#: The fetch wait Faust 0.15.3 hard-codes for its worker consumer (aiokafka driver).
FAUST_FETCH_MAX_WAIT_MS = 1500

_Thread = faust_aiokafka.AIOKafkaConsumerThread
#: app -> the fetch wait its worker consumer gets; apps not listed keep Faust's.
_fetch_waits: weakref.WeakKeyDictionary[faust.App, int] = weakref.WeakKeyDictionary()
#: Faust's own method, kept once the patch is installed.
_original: Callable[[Any, Any], Any] | None = None

#: Apps whose producer is idempotent outside transactions too (KAFKA_IDEMPOTENT).
_idempotent_apps: weakref.WeakSet[faust.App] = weakref.WeakSet()
#: Faust's own ``Producer._settings_extra``, kept once that patch is installed.
_original_extra: Callable[[Any], Any] | None = None


class LibraryChanged(RatesError):
    """A third-party library no longer has what a workaround patches."""


def versions() -> str:
    return f"faust-streaming {version('faust-streaming')}, aiokafka {aiokafka.__version__}"


def _create_worker_consumer(self: Any, transport: Any) -> aiokafka.AIOKafkaConsumer:
    assert _original is not None  # installed by lower_fetch_max_wait
    consumer: aiokafka.AIOKafkaConsumer = _original(self, transport)
    wait = _fetch_waits.get(self.app)
    if wait is not None:
        found = getattr(consumer, "_fetch_max_wait_ms", None)
        if found != FAUST_FETCH_MAX_WAIT_MS:
            raise LibraryChanged(
                f"Faust's worker consumer has _fetch_max_wait_ms={found!r}, not the "
                f"{FAUST_FETCH_MAX_WAIT_MS} this workaround lowers ({versions()}): check "
                "pipeline/workarounds.py against the new versions"
            )
        # aiokafka's Fetcher reads it in start(), which Faust calls after this returns.
        consumer._fetch_max_wait_ms = wait
    return consumer


def lower_fetch_max_wait(app: faust.App, wait_ms: int) -> None:
    """Give ``app``'s worker consumer a fetch wait of ``wait_ms`` instead of Faust's 1500 ms.

    Tansu answers a fetch long-poll only after half the max wait, so the stock value adds
    ~750 ms per hop through an agent (docs/architecture.md, measured). The patch of
    ``AIOKafkaConsumerThread._create_worker_consumer`` is installed once, whatever the
    number of calls; each app registers its own wait.
    """
    global _original
    current = getattr(_Thread, "_create_worker_consumer", None)
    if current is not _create_worker_consumer:
        if not callable(current):
            raise LibraryChanged(
                "faust's AIOKafkaConsumerThread has no _create_worker_consumer "
                f"({versions()}): check pipeline/workarounds.py against the new versions"
            )
        _original = current
        _Thread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    _fetch_waits[app] = wait_ms


def _settings_extra(self: Any) -> dict[str, Any]:
    assert _original_extra is not None  # installed by make_producer_idempotent
    extra = dict(_original_extra(self))
    if self.app in _idempotent_apps:
        # aiokafka refuses idempotence with any acks but "all".
        extra.update(acks="all", enable_idempotence=True)
    return extra


def make_producer_idempotent(app: faust.App) -> None:
    """Make ``app``'s producer idempotent (``enable_idempotence``), as every other one is.

    Faust 0.15 turns idempotence on only inside transactions (``exactly_once``), which the
    pipeline cannot use (Tansu has none), so with ``KAFKA_IDEMPOTENT=true`` against real
    Kafka the worker alone would still write duplicates when it retries a send. The patch of
    ``Producer._settings_extra`` (the options Faust adds to its aiokafka producer's) is
    installed once; each app registers itself.
    """
    global _original_extra
    current = getattr(faust_aiokafka.Producer, "_settings_extra", None)
    if current is not _settings_extra:
        if not callable(current):
            raise LibraryChanged(
                "faust's aiokafka Producer has no _settings_extra "
                f"({versions()}): check pipeline/workarounds.py against the new versions"
            )
        _original_extra = current
        faust_aiokafka.Producer._settings_extra = _settings_extra  # type: ignore[method-assign]
    _idempotent_apps.add(app)
