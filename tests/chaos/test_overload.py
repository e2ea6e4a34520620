"""Overload on the running API: three times its measured maximum, 5,000 slow connections,
more event streams than the cap.

The load is bounded (seconds, one process, loopback): the machine is shared. The maximum is
measured here first: a closed loop of pipelined requests on 16 connections for 2 s (the
load generator shares the machine, so this is the most this machine serves, not the API's
best). Then the same connections offer three times that rate, open loop, for 10 s, while a
probe asks on fresh connections every 0.25 s: every probe must be answered (200, or 503
with Retry-After), and the first probe after the load must be answered at once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devtools.waiting import wait_until
from tests.chaos.stack import MAX_STREAMS, Stack
from tests.reliability import Row

REQUEST = b"GET /api/v1/courses HTTP/1.1\r\nHost: x\r\n\r\n"
CONNECTIONS = 16
MEASURE_S = 2.0
OVERLOAD_S = 10.0
#: A probe not answered within this long counts as the API being down.
PROBE_TIMEOUT_S = 5.0
SLOW_CONNECTIONS = 5000


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@dataclass
class Load:
    """Pipelined requests on a few connections, answers counted by status."""

    host: str
    port: int
    statuses: Counter[bytes] = field(default_factory=Counter)
    sent: int = 0
    unsent: int = 0

    async def _read(
        self, reader: asyncio.StreamReader, refill: asyncio.StreamWriter | None
    ) -> None:
        buf = b""
        while data := await reader.read(1 << 16):
            buf += data
            pos, answered = 0, 0
            while (i := buf.find(b"HTTP/1.1 ", pos)) >= 0 and i + 12 <= len(buf):
                self.statuses[buf[i + 9 : i + 12]] += 1
                pos, answered = i + 12, answered + 1
            buf = buf[max(pos, len(buf) - 11) :]
            if refill is not None and answered:  # closed loop: one new request per answer
                refill.write(REQUEST * answered)
                self.sent += answered

    async def closed_loop(self, seconds: float, depth: int = 16) -> float:
        """Answers per second with ``depth`` requests outstanding per connection."""
        streams = [await asyncio.open_connection(self.host, self.port) for _ in range(CONNECTIONS)]
        for _, writer in streams:
            writer.write(REQUEST * depth)
            self.sent += depth
        readers = [asyncio.create_task(self._read(r, w)) for r, w in streams]
        before = sum(self.statuses.values())
        await asyncio.sleep(seconds)
        answered = sum(self.statuses.values()) - before
        for task in readers:
            task.cancel()
        for _, writer in streams:
            writer.transport.abort()
        return answered / seconds

    async def open_loop(self, rate: float, seconds: float, depth: int = 64) -> None:
        """Offer ``rate`` requests per second for ``seconds``, at most ``depth`` outstanding
        per connection (what a client cannot send is counted in ``unsent``), then drop the
        connections."""
        streams = [await asyncio.open_connection(self.host, self.port) for _ in range(CONNECTIONS)]
        counts: list[Counter[bytes]] = [Counter() for _ in streams]
        readers = [
            asyncio.create_task(Load(self.host, self.port, counts[i])._read(r, None))
            for i, (r, _) in enumerate(streams)
        ]
        sent = [0] * len(streams)
        began = last = time.monotonic()
        owed = 0.0
        while (now := time.monotonic()) - began < seconds:
            owed += rate * (now - last) / len(streams)
            last = now
            each = int(owed)
            owed -= each
            for index, (_, writer) in enumerate(streams):
                room = depth - (sent[index] - sum(counts[index].values()))
                now_sent = max(0, min(each, room))
                writer.write(REQUEST * now_sent)
                sent[index] += now_sent
                self.unsent += each - now_sent
            await asyncio.sleep(0.005)
        for task in readers:
            task.cancel()
        for _, writer in streams:
            writer.transport.abort()
        self.sent += sum(sent)
        for count in counts:
            self.statuses.update(count)


#: The probe runs in a process of its own: the load generator holds this one's GIL.
PROBE = """
import json, sys, time, httpx
base, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    began = time.monotonic()
    try:
        r = httpx.get(base + "/api/v1/courses", timeout=float(sys.argv[3]),
                      headers={"Connection": "close"})
        status = r.status_code if r.status_code != 503 or r.headers.get("retry-after") else -2
    except httpx.HTTPError:
        status = -1
    print(json.dumps([time.time(), status, time.monotonic() - began]), flush=True)
    time.sleep(0.25)
"""


def probe(base: str, seconds: float) -> subprocess.Popen[str]:
    """Asks on a fresh connection every 0.25 s for ``seconds``: lines of [when, status, took]
    (status -1: no answer within PROBE_TIMEOUT_S; -2: a 503 without Retry-After)."""
    argv = [sys.executable, "-c", PROBE, base, str(seconds), str(PROBE_TIMEOUT_S)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def loaded(chaos: Stack) -> Iterator[Stack]:
    """The stack, its watcher paused while the test loads the API."""
    chaos.watch.paused.set()
    try:
        yield chaos
    finally:
        chaos.watch.paused.clear()


def test_three_times_the_maximum_for_10_s(loaded: Stack) -> None:
    chaos = loaded
    host, port = address(chaos.api)
    measure = Load(host, port)
    maximum = asyncio.run(measure.closed_loop(MEASURE_S))
    assert set(measure.statuses) <= {b"200", b"503"}, measure.statuses
    prober = probe(chaos.api, OVERLOAD_S + 2.5)
    time.sleep(0.5)  # the probe's interpreter started
    load = Load(host, port)
    began = time.time()
    asyncio.run(load.open_loop(3 * maximum, OVERLOAD_S))
    ended = time.time()
    out, _ = prober.communicate(timeout=PROBE_TIMEOUT_S + 10)
    answers: list[Any] = [json.loads(line) for line in out.splitlines()]
    during = [a for a in answers if began <= a[0] < ended]
    after = [a for a in answers if a[0] >= ended]
    assert during and after, answers
    assert all(status in (200, 503) for _, status, _ in during), during
    assert set(load.statuses) <= {b"200", b"503"}, load.statuses
    first_after = after[0]
    assert first_after[1] == 200, first_after
    slowest = max(took for _, _, took in during)
    answered = sum(load.statuses.values())
    chaos.report.add(
        Row(
            f"overload: 3x the measured maximum ({maximum:.0f} req/s here) for 10 s",
            "API",
            f"offered {(load.sent + load.unsent) / OVERLOAD_S:.0f} req/s (64 in flight per "
            f"connection at most), answered {answered / OVERLOAD_S:.0f}"
            f" req/s ({dict((k.decode(), v) for k, v in load.statuses.items())}); "
            f"{len(during)} probes all answered, the slowest in {slowest:.2f} s",
            round(first_after[2], 2),
        )
    )
    chaos.alive()


def test_5000_slow_connections_do_not_stop_the_others(loaded: Stack) -> None:
    chaos = loaded
    host, port = address(chaos.api)
    with ExitStack() as held:
        opened = 0
        for index in range(SLOW_CONNECTIONS):
            sock = held.enter_context(socket.create_connection((host, port), timeout=5))
            # Slowloris: a request line and half the headers, never finished; some say nothing.
            if index % 2:
                sock.sendall(b"GET /api/v1/courses HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            opened += 1
        assert opened == SLOW_CONNECTIONS
        time.sleep(1)
        began = time.monotonic()
        response = httpx.get(f"{chaos.api}/api/v1/courses", timeout=PROBE_TIMEOUT_S)
        took = time.monotonic() - began
        assert response.status_code == 200, response.text
        assert httpx.get(f"{chaos.api}/healthz", timeout=PROBE_TIMEOUT_S).status_code == 200
    chaos.report.add(
        Row(
            f"{SLOW_CONNECTIONS} idle and slowloris connections",
            "API",
            f"other clients answered 200 meanwhile (in {took:.2f} s)",
            None,
        )
    )
    chaos.alive()


def test_event_streams_beyond_the_cap_are_503(chaos: Stack) -> None:
    host, port = address(chaos.api)
    request = b"GET /api/v2/courses/stream HTTP/1.1\r\nHost: x\r\n\r\n"

    def open_stream() -> tuple[socket.socket, bytes]:
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        return sock, head

    with ExitStack() as held:
        for _ in range(MAX_STREAMS):
            sock, head = open_stream()
            held.callback(sock.close)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
        sock, head = open_stream()
        held.callback(sock.close)
        assert head.startswith(b"HTTP/1.1 503"), head[:300]
        assert b"retry-after: 1" in head.lower(), head
        body = httpx.get(f"{chaos.api}/api/v2/courses/stream", timeout=5)
        assert body.status_code == 503 and "API_MAX_STREAMS" in body.json()["detail"]

    # Every slot came back when the streams closed.
    def reopened() -> bool:
        sock, head = open_stream()
        sock.close()
        return head.startswith(b"HTTP/1.1 200")

    wait_until(reopened, 5, "a stream to be accepted again")
    chaos.report.add(
        Row(
            f"event streams beyond the cap (API_MAX_STREAMS={MAX_STREAMS})",
            "API",
            f"stream {MAX_STREAMS + 1} answered 503 with Retry-After; accepted again once closed",
            None,
        )
    )
