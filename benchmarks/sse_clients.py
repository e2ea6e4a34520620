"""Many `/api/v2/courses/stream` clients in one process, timing when each marked change arrives.

    python -m benchmarks.sse_clients URL N

Opens N event streams (in batches, each counted once its first event arrived), prints
``ready``, then for each line ``dump`` on stdin prints a JSON object {marker: [arrival Unix
times]} of the changes seen since the last dump and forgets them; ``quit`` (or the end of
stdin) closes everything. A marker is the digits after ``MARKER`` in a course's value, so the
benchmark that publishes the changes can tell them apart. Each connection is a bare asyncio
protocol that only stamps the time and scans the bytes: the client should cost far less than
the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import defaultdict
from urllib.parse import urlsplit

import uvloop

#: Integer part of the marked values the benchmark publishes (BTC-USD = 77777.<marker>).
MARKER = b"77777."
_MARKED = re.compile(rb'"value":77777\.(\d+)')
BATCH = 250


class Stream(asyncio.Protocol):
    """One event stream: records when each marked change arrived."""

    def __init__(self, arrivals: defaultdict[str, list[float]]) -> None:
        self.arrivals = arrivals
        self.first = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.first.done() and b"\nevent: " in data:
            self.first.set_result(None)
        if MARKER in data:
            for marker in _MARKED.findall(data):
                self.arrivals[marker.decode()].append(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_exception(
                ConnectionError(f"stream closed before its first event: {exc}")
            )


async def main(url: str, count: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    arrivals: defaultdict[str, list[float]] = defaultdict(list)
    transports: list[asyncio.Transport] = []
    for start in range(0, count, BATCH):
        batch = [Stream(arrivals) for _ in range(min(BATCH, count - start))]
        for stream in batch:
            transport, _ = await loop.create_connection(lambda s=stream: s, host, port)  # type: ignore[misc]
            transport.write(request)
            transports.append(transport)
        await asyncio.wait_for(asyncio.gather(*(s.first for s in batch)), 60)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (line := (await reader.readline()).strip()) not in (b"", b"quit"):
        if line == b"dump":
            print(json.dumps(arrivals), flush=True)
            arrivals.clear()
    for transport in transports:
        transport.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
