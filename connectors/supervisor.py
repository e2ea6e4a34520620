"""The one reconnect supervisor: jittered capped backoff, and the single retry-or-fail rule."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from common.backoff import Backoff
from schemas.errors import ConfigError, RateLimited

log = logging.getLogger(__name__)


def is_retryable(exc: BaseException) -> bool:
    """The one place that decides retry-or-fail: configuration errors fail, the rest retry."""
    return not isinstance(exc, ConfigError)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the supervisor tells its caller about each ended attempt."""

    attempt: int
    error: BaseException | None
    lived_s: float
    delay_s: float


async def supervise(
    name: str,
    run_once: Callable[[], Awaitable[None]],
    backoff: Backoff,
    *,
    on_retry: Callable[[Attempt], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> None:
    """Run ``run_once`` forever: retry with backoff on retryable errors, raise the others.

    ``run_once`` returning normally (the venue asked for a reconnect, or a rotation ended
    it) is retried at once when the attempt lived long enough.
    """
    attempt = 0
    while True:
        started = clock()
        error: BaseException | None = None
        try:
            await run_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the supervisor is where every failure ends up
            if not is_retryable(exc):
                log.error("%s: giving up: %s", name, exc)
                raise
            error = exc
        lived = clock() - started
        if lived >= backoff.reset_after_s:
            attempt = 0
        if error is None and lived >= backoff.min_lived_s:
            # A healthy connection ended normally (rotation, shutdown notice): go again now.
            attempt, delay = 0, 0.0
        else:
            attempt += 1
            delay = backoff.delay(attempt, rand)
        if isinstance(error, RateLimited):
            delay = max(delay, error.retry_after_s)  # the venue said how long to wait
        on_retry(Attempt(attempt=attempt, error=error, lived_s=lived, delay_s=delay))
        await sleep(delay)
