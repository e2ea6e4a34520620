"""Mechanisms every stage shares (clock, backoff, throttled logs, database URLs), below them."""
