"""Version 1's answer, ``GET /api/v1/courses``: the exact body, and its cache per query string.

The same function answers the FastAPI route and the edge's fast path (api/edge.py), so the
two cannot differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson

from api.answers import Answer, ApiError, unavailable
from api.params import parse_directions, parse_exchanger, v1_params
from api.render.values import number
from api.snapshot import Snapshot

#: Distinct query strings whose v1 answers are kept between two changes (a bound on memory).
V1_CACHE_SIZE = 4096
#: Longer query strings are answered but not cached.
V1_CACHE_KEY_MAX = 512


def courses_v1(snapshot: Snapshot, exchanger: str | None, directions: Sequence[str]) -> bytes:
    """The exact v1 body; ApiError(503) when the venue has no fresh data for them."""
    venue = exchanger
    if venue is None:
        if snapshot.active is None and snapshot.latest:
            raise unavailable(
                "warming up: the failover policy has not chosen the active venue yet "
                "(it waits to hear from every enabled venue, or RATES_WARMUP_S)"
            )
        if snapshot.active is None:
            raise unavailable("no rates yet: nothing has arrived from rates.latest")
        if snapshot.active.venue is None:
            raise unavailable("no venue has fresh rates at the moment")
        venue = snapshot.active.venue
    courses = []
    for direction in directions:
        record = snapshot.latest.get(direction)
        quote = record.quotes.get(venue) if record is not None else None
        if quote is not None and quote.fresh:
            courses.append({"direction": direction, "value": number(quote.value)})
    if not courses:
        raise unavailable(f"{venue} has no fresh rate for {', '.join(directions)}")
    return orjson.dumps({"exchanger": venue, "courses": courses})


def answer_v1(snapshot: Snapshot, exchanger: str | None, directions: Sequence[str]) -> Answer:
    """Validation, body and errors of ``GET /api/v1/courses``, as one answer."""
    try:
        venue = parse_exchanger(exchanger, snapshot.exchangers)
        wanted = parse_directions(directions, snapshot.directions)
        return Answer.ok(courses_v1(snapshot, venue, wanted))
    except ApiError as exc:
        return Answer.error(exc)


class V1Answers:
    """The v1 answer to each raw query string, rendered once per version of the snapshot.

    A 200 is given only while records keep coming (the pipeline republishes every key each
    second): after ``max_silence_s`` without one, rates can no longer be vouched for. While the
    broker is away (``away()`` says why: unreachable, or replaced and the pipeline on its way
    back) the limit is ``away_max_s``: a recycle of the embedded broker keeps the last values.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        max_silence_s: float = 10.0,
        away: Callable[[], str | None] = lambda: None,
        away_max_s: float = 60.0,
    ) -> None:
        self.snapshot = snapshot
        self.max_silence_s = max_silence_s
        self.away = away
        self.away_max_s = away_max_s
        self._silent = Answer.error(
            unavailable(
                f"no rates from the pipeline for more than {max_silence_s:g} s "
                "(pipeline or Kafka down): the last ones can no longer be vouched for"
            )
        )
        self._away = Answer.error(
            unavailable(
                f"no rates from the pipeline for more than {away_max_s:g} s while the Kafka "
                "broker is away: the last ones can no longer be vouched for"
            )
        )
        self._cache: dict[bytes, Answer] = {}
        self._version = snapshot.version

    def get(self, query: bytes) -> Answer:
        """The answer to a raw query string (``direction=BTC-USD&exchanger=binance``)."""
        if self._version != self.snapshot.version:
            self._cache.clear()
            self._version = self.snapshot.version
        answer = self._cache.get(query)
        if answer is None:
            try:
                exchanger, directions = v1_params(query)
            except ApiError as exc:
                answer = Answer.error(exc)
            else:
                answer = answer_v1(self.snapshot, exchanger, directions)
            if len(self._cache) < V1_CACHE_SIZE and len(query) <= V1_CACHE_KEY_MAX:
                self._cache[query] = answer
        return self.vouch(answer)

    def vouch(self, answer: Answer) -> Answer:
        """The answer, or the 503 of a silent pipeline in place of a 200."""
        snapshot = self.snapshot
        silence = snapshot.clock() - (snapshot.updated_at or 0.0)
        if answer.status != 200 or silence <= self.max_silence_s:
            return answer
        if self.away() is None:
            return self._silent
        return answer if silence <= self.away_max_s else self._away
