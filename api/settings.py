"""Settings of the API process (``rates api``)."""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommaList, CommonSettings


class ApiSettings(CommonSettings):
    """Where the API listens, how many processes serve it, and how it follows the topics."""

    api_host: str = Field(default="127.0.0.1", description="address the API binds to")
    api_port: int = Field(default=8000, ge=1, le=65535, description="port the API listens on")
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes sharing the port, each with its own snapshot",
    )
    api_snapshot_tail: int = Field(
        default=2000,
        ge=10,
        description="records per partition read back from rates.latest and venues.status "
        "to rebuild the snapshot",
    )
    api_max_silence_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="with no rates.latest record for this long (pipeline or Kafka down), "
        "v1 answers 503 rather than rates it can no longer vouch for",
    )
    api_broker_away_max_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="while the Kafka broker is away (unreachable, or replaced: the embedded one "
        "restarted or recycled), v1 keeps answering with the last rates for this long instead "
        "of API_MAX_SILENCE_S (v2 marks them stale, /readyz says why)",
    )
    api_access_log: bool = Field(
        default=False, description="log every request (off: /metrics counts them)"
    )
    api_cors_origins: CommaList = Field(
        default=(),
        description="origins allowed to call the API from a browser, comma-separated, "
        "or * for any; empty: CORS closed",
    )
    api_stream_max_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="an event stream ends after this long; clients resume with Last-Event-ID",
    )
    api_max_streams: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="open event streams (/api/v2/courses/stream) per API process; beyond, "
        "a new stream is answered 503 with Retry-After",
    )
    api_fast_path: bool = Field(
        default=True,
        description="answer GET /api/v1/courses in a pure ASGI fast path before FastAPI "
        "(same answers; false: through FastAPI's router)",
    )
