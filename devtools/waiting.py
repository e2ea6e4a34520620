"""Polling until something holds, with a deadline and the last error in the message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1
) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
            result = None
        if result is not None and result is not False:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last error: {last})")
