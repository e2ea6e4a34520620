"""DATABASE_URL in the two spellings its clients want (psycopg's and yoyo's)."""

from __future__ import annotations


def libpq_url(url: str) -> str:
    """psycopg wants ``postgresql://``; DATABASE_URL may name a driver (``postgresql+psycopg``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme: psycopg 3 is ``postgresql+psycopg``."""
    _, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}"
