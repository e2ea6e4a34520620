"""Hostile requests to the API: each answered with a 4xx within 1 s, and the API unharmed.

Requests go over a raw socket, so that what is sent is exactly what a hostile client sends
(NUL bytes, invalid percent-escapes, 64 KB values, huge headers): no client library
cleans it first. The OpenAPI document as a whole is fuzzed by schemathesis in
tests/integration/test_api_contract.py (test_schemathesis_finds_no_nonconformance).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.chaos.stack import Stack
from tests.reliability import Row

#: The answer must start within this long (a 4xx is cheap: no hostile input may make it dear).
ANSWER_WITHIN_S = 1.0
#: Each path with the parameters it reads (others are ignored, as HTTP APIs do).
PARAMS = {
    "/api/v1/courses": ("direction", "exchanger"),
    "/api/v2/courses": ("direction",),
    "/api/v2/courses/history": ("direction", "since", "until", "limit", "cursor", "resolution"),
}

HOSTILE_VALUES = {
    "unicode": "\uff22\uff34\uff23-ÜSD\u202e💥",  # fullwidth BTC, RTL override
    "sql injection": "BTC-USD' OR '1'='1'; DROP TABLE quotes;--",
    "script": "<script>alert(1)</script>",
    "path traversal": "../../../../etc/passwd",
    "log4j": "${jndi:ldap://127.0.0.1/a}",
    "format string": "%s%s%s%n%x",
    "NUL byte": "BTC-USD\x00",
    "newline": "BTC-USD\r\nX-Injected: 1",
    "64 KB value": "A" * 65536,
}


def raw_get(base: str, target: str, headers: str = "") -> tuple[int, float]:
    """(status, seconds to the status line) of a GET sent byte for byte."""
    parts = urlsplit(base)
    began = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_WITHIN_S) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        first = b""
        while b"\r\n" not in first:
            chunk = sock.recv(4096)
            if not chunk:
                break
            first += chunk
    took = time.monotonic() - began
    assert first.startswith(b"HTTP/1.1 "), first[:200]
    return int(first.split()[1]), took


def assert_client_error(base: str, target: str, headers: str = "") -> float:
    status, took = raw_get(base, target, headers)
    assert 400 <= status < 500, (status, target[:200])
    return took


@pytest.mark.parametrize("path", list(PARAMS))
@pytest.mark.parametrize("name", list(HOSTILE_VALUES))
def test_hostile_values_are_4xx(chaos: Stack, path: str, name: str) -> None:
    value = quote(HOSTILE_VALUES[name], safe="")
    for param in PARAMS[path]:
        other = "" if param == "direction" else "&direction=BTC-USD"
        assert_client_error(chaos.api, f"{path}?{param}={value}{other}")


def test_thousands_of_directions_and_broken_escapes(chaos: Stack) -> None:
    slowest = 0.0
    targets = [
        # 5,000 distinct unknown directions, repeated and comma-separated.
        "/api/v1/courses?" + "&".join(f"direction=X{i}-Y{i}" for i in range(5000)),
        "/api/v1/courses?direction=" + ",".join(f"X{i}-Y{i}" for i in range(5000)),
        "/api/v2/courses?" + "&".join(f"direction=X{i}-Y{i}" for i in range(5000)),
        # Invalid and overlong percent-escapes, a bare NUL, unknown parameters by the thousand.
        "/api/v1/courses?direction=%ZZ%C0%AF%FF",
        "/api/v1/courses?direction=BTC-USD%00",
        "/api/v2/courses?direction=%E2%80%AEBTC-USD",
        "/api/v2/courses/history?direction=BTC-USD&since=" + quote("2026-13-45T99:99:99Z"),
        "/api/v2/courses/history?direction=BTC-USD&limit=99999999999999999999999",
    ]
    for target in targets:
        slowest = max(slowest, assert_client_error(chaos.api, target))
    # 5,000 copies of one valid direction: a plain answer, as fast.
    status, took = raw_get(chaos.api, "/api/v1/courses?" + "direction=BTC-USD&" * 5000)
    assert status in (200, 503) or 400 <= status < 500, status
    slowest = max(slowest, took)
    record(chaos, "thousands of directions, broken escapes", slowest)


def test_huge_headers_and_urls(chaos: Stack) -> None:
    slowest = 0.0
    slowest = max(
        slowest, assert_client_error(chaos.api, "/api/v1/courses", "X-Big: " + "a" * 65536 + "\r\n")
    )
    many = "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(1000))
    slowest = max(slowest, assert_client_error(chaos.api, "/api/v1/courses", many))
    slowest = max(slowest, assert_client_error(chaos.api, "/api/v1/courses?" + "q" * 1_000_000))
    record(chaos, "64 KB header, 1,000 headers, 1 MB URL", slowest)
    assert httpx.get(f"{chaos.api}/api/v1/courses", timeout=5).status_code == 200
    chaos.alive()


def record(chaos: Stack, what: str, slowest: float) -> None:
    chaos.report.add(
        Row(f"hostile requests: {what}", "API", f"4xx, the slowest in {slowest:.2f} s", None)
    )
