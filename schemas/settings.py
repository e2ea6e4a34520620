"""Settings every process shares (Kafka, logging, topic prefix, state dir) and their errors.

Each process defines one settings class deriving from :class:`CommonSettings`, loads it once
in its entry point (environment, then ``.env``) and passes it down.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.directions import check_directions
from schemas.errors import ConfigError
from schemas.topics import Topics, check_prefix
from schemas.venues import VENUES

T = TypeVar("T", bound="CommonSettings")

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


def split_commas(value: Any) -> Any:
    """Turn ``"a, b,,c"`` into ``("a", "b", "c")``; leave non-strings to pydantic."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: A comma-separated list in the environment (``a,b,c``), a tuple in code.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_commas)]

#: The directions served by default, in the API's order.
DEFAULT_DIRECTIONS: tuple[str, ...] = (
    "BTC-USD",
    "BTC-RUB",
    "ETH-USD",
    "ETH-RUB",
    "USDTTRC-USD",
    "USDTTRC-RUB",
    "USDTERC-USD",
    "USDTERC-RUB",
)

_HOSTPORT_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


def check_bootstrap(value: str) -> str:
    """Validate ``host:port[,host:port...]``; raise ValueError with the offending part."""
    parts = [p.strip() for p in value.split(",")]
    for part in parts:
        m = _HOSTPORT_RE.match(part)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"expected host:port[,host:port...], got {part!r}")
    return ",".join(parts)


def check_database_url(value: str) -> str:
    """Validate a PostgreSQL URL (``postgresql://user[:pw]@host[:port]/db[?host=/socket]``)."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc})") from None
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError("expected postgresql://user@host:port/database")
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database (postgresql://user@host:port/database)")
    if port == 0:
        raise ValueError("port 0 is not a PostgreSQL port")
    return value


def check_venues(names: tuple[str, ...], setting: str) -> tuple[str, ...]:
    unknown = [n for n in names if n not in VENUES]
    if unknown:
        raise ValueError(
            f"unknown venue {', '.join(map(repr, unknown))} in {setting} "
            f"(known: {', '.join(VENUES)})"
        )
    return tuple(dict.fromkeys(names))


class CommonSettings(BaseSettings):
    """Settings shared by every process; environment names are the field names upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="host:port of the Kafka broker; unset: `rates up` starts an embedded one",
    )
    kafka_connect_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="seconds to retry a configured broker at start before exiting",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=10,
        ge=1,
        le=1500,
        description="consumer long-poll wait; Tansu polls at half of it, so keep it small",
    )
    kafka_linger_ms: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="producers wait this long to fill a batch: Tansu keeps about 0.8 KB of RAM "
        "per batch besides its records, so fewer, fuller batches keep its memory small",
    )
    kafka_compression: Literal["none", "gzip"] = Field(
        default="gzip",
        description="compression of produced batches; Tansu keeps them compressed in memory "
        "(gzip: about a sixth of the RAM of uncompressed full batches)",
    )
    kafka_idempotent: bool = Field(
        default=False,
        description="idempotent producer: real Kafka only (Tansu answers UnknownServerError)",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the Prometheus endpoints of connector, worker and history bind to "
        "(0.0.0.0 in containers)",
    )
    log_level: LogLevel = Field(
        default="INFO", description="CRITICAL, ERROR, WARNING, INFO or DEBUG (per-tick detail)"
    )
    rates_state_dir: Path = Field(
        default=Path(".rates"),
        description="local state (embedded PostgreSQL data, Faust data), kept across runs",
    )
    rates_topic_prefix: str = Field(
        default="",
        description="prefix of every topic and of the Faust app id (isolates replays and tests)",
    )
    rates_partitions: int = Field(
        default=4, ge=1, le=64, description="partitions of every topic the pipeline creates"
    )
    rates_directions: CommaList = Field(
        default=DEFAULT_DIRECTIONS,
        description="directions served, comma-separated, in order: ASSET-USD or ASSET-RUB for "
        "any asset a venue lists (USDTTRC/USDTERC name USDT); see the README to add a pair",
    )
    rates_venues: CommaList = Field(default=VENUES, description="enabled venues, comma-separated")
    rates_usdt_as_usd: bool = Field(
        default=True,
        description="count an X-USDT market as X-USD (market convention); false: convert it "
        "through the same venue's USDT-USD",
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://user@host:port/db; unset: `rates up` starts an embedded one",
    )

    @field_validator("kafka_bootstrap_servers", mode="before")
    @classmethod
    def _bootstrap(cls, value: Any) -> Any:
        if isinstance(value, str):
            return check_bootstrap(value) if value.strip() else None
        return value

    @field_validator("rates_directions")
    @classmethod
    def _directions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_directions(value)

    @field_validator("rates_venues")
    @classmethod
    def _known_venues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("no venue enabled")
        return check_venues(value, "RATES_VENUES")

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            return check_database_url(value) if value.strip() else None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("rates_topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return check_prefix(value)
        except ConfigError as exc:
            raise ValueError(str(exc).split(" is invalid: ", 1)[-1]) from None

    @property
    def topics(self) -> Topics:
        return Topics(self.rates_topic_prefix)

    def producer_options(self) -> dict[str, Any]:
        """aiokafka producer options shared by every process that produces."""
        return {
            "acks": "all",
            "linger_ms": self.kafka_linger_ms,
            "compression_type": self.compression_type,
            "enable_idempotence": self.kafka_idempotent,
        }

    @property
    def compression_type(self) -> str | None:
        """KAFKA_COMPRESSION as Kafka clients spell it (None: uncompressed)."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def database(self) -> str:
        """The configured PostgreSQL URL; raises ConfigError when none is set."""
        if not self.database_url:
            raise ConfigError(
                "DATABASE_URL is not set: point it at PostgreSQL, "
                "or use `rates up`, which starts an embedded one"
            )
        return self.database_url

    @property
    def bootstrap(self) -> str:
        """The configured broker; raises ConfigError when none is set."""
        if not self.kafka_bootstrap_servers:
            raise ConfigError(
                "KAFKA_BOOTSTRAP_SERVERS is not set: point it at a broker, "
                "or use `rates up`, which starts an embedded one"
            )
        return self.kafka_bootstrap_servers


class PollSettings(CommonSettings):
    """How often the polled sources are asked: read by the connector, which polls at this
    pace, and by the worker, which counts a source silent after twice its interval."""

    coingecko_poll_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds between CoinGecko /simple/price requests (demo plan: at most "
        "30 a minute); silence for twice this marks it silent",
    )
    cbr_poll_interval_s: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="seconds between CBR requests (the rate changes once a day); silence for "
        "twice this marks it silent",
    )

    def poll_interval_s(self, setting: str) -> float:
        """The interval held by ``setting`` (a polled venue's ``interval_setting``)."""
        interval: float = getattr(self, setting)
        return interval


def describe_error(exc: ValidationError) -> str:
    """One line naming each invalid setting by its environment name."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        shown = f"={given!r}" if isinstance(given, str | int | float) else ""
        parts.append(f"{name}{shown}: {msg}")
    return "invalid setting " + "; ".join(parts)


def load(cls: type[T], **overrides: Any) -> T:
    """Load settings once (environment, then .env); raise ConfigError naming bad settings."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
