"""The API's limits: headers over 16 KB are a 431, event streams beyond the cap a 503."""

from __future__ import annotations

from typing import Any

import pytest

from api.answers import ApiError
from api.edge import MAX_HEADER_BYTES, HeaderLimit
from api.stream import StreamSlots


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _status(headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    await HeaderLimit(_ok)({"type": "http", "headers": headers}, receive, send)
    status: int = sent[0]["status"]
    return status


async def test_headers_up_to_the_limit_pass_and_beyond_are_431() -> None:
    name = b"x-big"
    assert await _status([(name, b"a" * (MAX_HEADER_BYTES - len(name)))]) == 200
    assert await _status([(name, b"a" * (MAX_HEADER_BYTES - len(name) + 1))]) == 431
    many = [(b"x-h%d" % i, b"b" * 100) for i in range(200)]
    assert await _status(many) == 431


def test_stream_slots_up_to_the_cap_then_503_until_one_is_given_back() -> None:
    slots = StreamSlots()
    for _ in range(3):
        slots.take(3)
    with pytest.raises(ApiError) as refused:
        slots.take(3)
    assert refused.value.status == 503 and refused.value.retry_after_s == 1
    assert "API_MAX_STREAMS" in refused.value.message
    slots.give()
    slots.take(3)
    assert slots.open == 3
