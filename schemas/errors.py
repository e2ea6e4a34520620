"""The project's one exception hierarchy."""


class RatesError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(RatesError):
    """A setting or command-line argument is invalid; the message names it."""


class BrokerUnavailable(RatesError):
    """The Kafka broker could not be reached in time."""


class DatabaseUnavailable(RatesError):
    """PostgreSQL could not be reached."""


class RecordError(RatesError, ValueError):
    """A topic record is malformed (bad JSON, missing or mistyped field)."""


class FrameError(RatesError, ValueError):
    """A venue frame is malformed or carries an unusable price."""


class UnknownSymbol(FrameError):
    """A venue frame quotes a symbol this venue module does not map to a market."""


class VenueError(RatesError):
    """A venue answered a request with an HTTP error; the message says which."""


class RateLimited(VenueError):
    """A venue answered HTTP 429: wait at least ``retry_after_s`` before asking again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
