"""The reconnect supervisor: capped jittered backoff, one retry-or-fail rule, fast re-connect."""

from __future__ import annotations

import pytest

from common.backoff import Backoff
from connectors.supervisor import Attempt, is_retryable, supervise
from schemas.errors import ConfigError, RateLimited


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0)
    lows = [backoff.delay(n, rand=lambda: 0.0) for n in range(1, 7)]
    highs = [backoff.delay(n, rand=lambda: 1.0) for n in range(1, 7)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert highs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_only_configuration_errors_are_final() -> None:
    assert not is_retryable(ConfigError("bad URL"))
    assert is_retryable(ConnectionRefusedError())
    assert is_retryable(TimeoutError("silent"))
    assert is_retryable(RuntimeError("anything else"))


class Script:
    """A run_once that plays a list of outcomes, on a fake clock, then stops the loop."""

    def __init__(self, outcomes: list[tuple[float, BaseException | None]]) -> None:
        self.outcomes = outcomes
        self.now = 0.0
        self.sleeps: list[float] = []
        self.attempts: list[Attempt] = []

    async def run_once(self) -> None:
        if not self.outcomes:
            raise KeyboardInterrupt  # ends the test
        lived, error = self.outcomes.pop(0)
        self.now += lived
        if error is not None:
            raise error

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def play(self, backoff: Backoff) -> None:
        with pytest.raises(KeyboardInterrupt):
            await supervise(
                "venue",
                self.run_once,
                backoff,
                on_retry=self.attempts.append,
                clock=lambda: self.now,
                sleep=self.sleep,
                rand=lambda: 1.0,
            )


async def test_failures_back_off_and_a_long_healthy_run_resets() -> None:
    script = Script(
        [
            (0.1, ConnectionRefusedError()),
            (0.1, ConnectionRefusedError()),
            (0.1, TimeoutError()),
            (120.0, TimeoutError()),  # lived long: the count starts again
        ]
    )
    await script.play(Backoff(base_s=0.001, cap_s=0.004, reset_after_s=60))
    assert script.sleeps == [0.001, 0.002, 0.004, 0.001]
    assert [a.attempt for a in script.attempts] == [1, 2, 3, 1]


async def test_a_normal_end_of_a_healthy_connection_reconnects_at_once() -> None:
    script = Script([(30.0, None), (0.01, None)])
    await script.play(Backoff(base_s=0.001, cap_s=0.004, min_lived_s=1.0))
    # lived 30 s: at once; ended after 10 ms: treated like a failure, so it cannot spin
    assert script.sleeps == [0.0, 0.001]


async def test_configuration_errors_are_raised() -> None:
    script = Script([(0.1, ConfigError("BINANCE_WS_URL: bad"))])
    with pytest.raises(ConfigError):
        await supervise("venue", script.run_once, Backoff(), sleep=script.sleep)
    assert script.sleeps == []


async def test_a_rate_limited_venue_is_asked_again_only_after_retry_after() -> None:
    script = Script([(0.1, RateLimited("HTTP 429", retry_after_s=7.0)), (0.1, TimeoutError())])
    await script.play(Backoff(base_s=0.001, cap_s=0.004))
    assert script.sleeps == [7.0, 0.002]
