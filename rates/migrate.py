"""Applies the yoyo SQL migrations in ``migrations/`` (under yoyo's lock, so concurrent-safe)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations

from common.database import yoyo_url
from schemas.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def apply(database_url: str, timeout_s: float = 0.0) -> list[str]:
    """Apply pending migrations; return their ids. DatabaseUnavailable when unreachable."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            backend = get_backend(yoyo_url(database_url))
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable"
                raise DatabaseUnavailable(
                    f"DATABASE_URL: cannot connect to PostgreSQL ({reason})"
                ) from None
            time.sleep(0.5)
    migrations = read_migrations(str(MIGRATIONS))
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    applied = [m.id for m in pending]
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied
