"""Prepared answers as Starlette responses, for the routes that FastAPI serves."""

from __future__ import annotations

from starlette.responses import Response

from api.snapshot import Answer, matches


def respond(answer: Answer, if_none_match: str | None = None) -> Response:
    """The answer's status, headers and body as they are, honouring If-None-Match."""
    if matches(answer.etag, if_none_match.encode("latin-1") if if_none_match else None):
        answer = answer.not_modified()
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = list(answer.headers)
    return response
