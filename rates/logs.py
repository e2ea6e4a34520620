"""Logging set-up, called once by each entry point."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Libraries that log every retry at ERROR; the project reports those itself.
_CHATTY = ("aiokafka", "kafka")
#: Libraries that log every reconnect attempt at WARNING; the project reports outages itself.
_RECONNECTING = ("psycopg.pool",)


def configure(level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr, force=True)
    numeric = logging.getLevelName(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    for name in _RECONNECTING:
        logging.getLogger(name).setLevel(max(numeric, logging.ERROR))
