"""HTTP answers as sent: status, raw headers and body, ETags and If-None-Match, errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from starlette.responses import Response

#: Retry-After of every 503: the pipeline republishes each key at least every second.
RETRY_AFTER_S = 1


class ApiError(Exception):
    """An answer other than 200: status, message, and the Retry-After for 503s."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def unavailable(message: str) -> ApiError:
    return ApiError(503, message, RETRY_AFTER_S)


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer as sent: status, raw headers and body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes | None = None

    @classmethod
    def make(
        cls,
        status: int,
        body: bytes,
        *extra: tuple[bytes, bytes],
        etag: bytes | None = None,
    ) -> Answer:
        """A JSON answer with its length and any ``extra`` headers."""
        headers = ((b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)))
        return cls(status, headers + extra, body, etag)

    @classmethod
    def ok(cls, body: bytes) -> Answer:
        """200 with a strong ETag of the body and a one-second shared cache."""
        etag = b'"' + hashlib.blake2b(body, digest_size=8).hexdigest().encode() + b'"'
        return cls.make(200, body, (b"etag", etag), (b"cache-control", b"max-age=1"), etag=etag)

    @classmethod
    def error(cls, exc: ApiError) -> Answer:
        """The error as JSON: a 4xx cached for a second like a 200, a 5xx never.

        A client error depends only on the request, so a shared cache may reuse it; marked
        ``no-store``, nginx's cache lock queued every identical bad request behind the one
        before it (up to 5 s each under load). A 5xx is the service's passing state.
        """
        cache = b"no-store" if exc.status >= 500 else b"max-age=1"
        extra = [(b"cache-control", cache)]
        if exc.retry_after_s is not None:
            extra.append((b"retry-after", b"%d" % exc.retry_after_s))
        return cls.make(exc.status, orjson.dumps({"detail": exc.message}), *extra)

    def not_modified(self) -> Answer:
        """The 304 for a client that already holds this body."""
        assert self.etag is not None
        return Answer(304, ((b"etag", self.etag), (b"cache-control", b"max-age=1")), b"")


def matches(etag: bytes | None, if_none_match: bytes | None) -> bool:
    """If-None-Match (weak comparison): ``*`` or any listed tag equal to ours."""
    if etag is None or not if_none_match:
        return False
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags


def respond(answer: Answer, if_none_match: str | None = None) -> Response:
    """The answer as a Starlette response, headers as they are, honouring If-None-Match."""
    if matches(answer.etag, if_none_match.encode("latin-1") if if_none_match else None):
        answer = answer.not_modified()
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = list(answer.headers)
    return response
