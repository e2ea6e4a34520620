"""`rates up` says "serving" only when v1 serves rates, and otherwise what is missing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from rates.stack import announce, readiness


@pytest.fixture
def readyz() -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """A /readyz on a free loopback port answering the (status, reason) pairs in order."""
    answers: list[tuple[int, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, reason = answers.pop(0) if len(answers) > 1 else answers[0]
            body = json.dumps({"ready": status == 200, "reason": reason}).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", answers
    server.shutdown()
    server.server_close()


def test_readiness_reads_the_reason(readyz: tuple[str, list[tuple[int, str]]]) -> None:
    base, answers = readyz
    answers.append((503, "GET /api/v1/courses answers 503: no rates yet"))
    assert readiness(f"{base}/readyz") == (False, "GET /api/v1/courses answers 503: no rates yet")
    answers[0] = (200, "ok")
    assert readiness(f"{base}/readyz") == (True, "ok")
    ready, reason = readiness("http://127.0.0.1:9/readyz")
    assert not ready and reason.startswith("the API does not answer")


def test_serving_is_said_only_when_rates_are_served(caplog: pytest.LogCaptureFixture) -> None:
    states = [(False, "warming up")] * 4 + [(True, "ok")] * 2 + [(False, "no venue")] * 3
    states.append((True, "ok"))

    def check(url: str) -> tuple[bool, str]:
        assert url == "http://api/readyz"
        if not states:
            raise asyncio.CancelledError
        return states.pop(0)

    async def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await announce("http://api", patience_s=0.02, every_s=0.01, check=check)

    with caplog.at_level(logging.INFO, "rates.stack"):
        asyncio.run(run())
    assert [r.getMessage() for r in caplog.records] == [
        "not serving rates at http://api/api/v1/courses: warming up",
        "serving http://api/api/v1/courses",
        "not serving rates at http://api/api/v1/courses: no venue",
        "serving http://api/api/v1/courses",
    ]
