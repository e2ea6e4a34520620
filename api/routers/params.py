"""Parameters shared by the routes, described once for OpenAPI."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query

Directions = Annotated[
    list[str] | None,
    Query(
        description="directions, repeatable or comma-separated, case-insensitive; "
        "default: every configured direction, in the configured order",
        examples=["BTC-USD,ETH-RUB"],
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        description="an ETag from an earlier answer: 304 if unchanged",
        examples=['"6db6d9d928f217c7"'],
    ),
]
