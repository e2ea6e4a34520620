"""The error answer of every route: ``{"detail": ...}`` with its status and Retry-After."""

from __future__ import annotations

import orjson
from fastapi import Response

from api.snapshot import ApiError


def error_response(exc: ApiError) -> Response:
    headers = {} if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return Response(
        content=orjson.dumps({"detail": exc.message}),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )
