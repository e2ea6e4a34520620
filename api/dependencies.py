"""What the routes read, typed: one :class:`ApiState` per app, and a dependency for each part.

``create_app`` builds the state once and attaches it to the app; routes declare what they
need (``snapshot: CurrentSnapshot``) and FastAPI hands it over, typed, per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from api.feed import FeedState
from api.history import History
from api.params import Directions, check_single, parse_directions
from api.render.v1 import V1Answers
from api.settings import ApiSettings
from api.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ApiState:
    """Everything the routes of one app read: built once by ``create_app``."""

    settings: ApiSettings
    snapshot: Snapshot
    v1: V1Answers
    feed: FeedState
    history: History
    #: The wall clock of the answers (ages, venue status ages); a fixed one in tests.
    now: Callable[[], datetime]


def attach(app: FastAPI, state: ApiState) -> None:
    """Make ``state`` what this app's routes receive."""
    app.state.api = state


def state_of(app: FastAPI) -> ApiState:
    """The state ``create_app`` attached; TypeError for an app built otherwise."""
    state = getattr(app.state, "api", None)
    if not isinstance(state, ApiState):
        raise TypeError(f"app.state.api is a {type(state).__name__}: use api.app.create_app")
    return state


# The dependencies are coroutines: FastAPI would run plain functions in a thread pool.


async def api_state(request: Request) -> ApiState:
    return state_of(request.app)


State = Annotated[ApiState, Depends(api_state)]


async def _snapshot(state: State) -> Snapshot:
    return state.snapshot


async def _v1(state: State) -> V1Answers:
    return state.v1


async def _settings(state: State) -> ApiSettings:
    return state.settings


async def _feed(state: State) -> FeedState:
    return state.feed


async def _history(state: State) -> History:
    return state.history


async def _clock(state: State) -> Callable[[], datetime]:
    return state.now


async def _now(state: State) -> datetime:
    return state.now()


CurrentSnapshot = Annotated[Snapshot, Depends(_snapshot)]


async def _asked(snapshot: CurrentSnapshot, direction: Directions = None) -> list[str]:
    """The ``direction`` parameter, validated against the configured directions."""
    return parse_directions(direction, snapshot.directions)


AskedDirections = Annotated[list[str], Depends(_asked)]
CachedV1 = Annotated[V1Answers, Depends(_v1)]
Settings = Annotated[ApiSettings, Depends(_settings)]
Feed = Annotated[FeedState, Depends(_feed)]
HistoryStore = Annotated[History, Depends(_history)]
Clock = Annotated[Callable[[], datetime], Depends(_clock)]
Now = Annotated[datetime, Depends(_now)]


async def single_valued(request: Request) -> None:
    """422 for a single-valued parameter given twice (every route of v1 and v2)."""
    check_single(request.query_params.multi_items())
