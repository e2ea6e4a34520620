"""Settings of the API process (``rates api``)."""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Where the API listens and how it follows rates.latest."""

    api_host: str = Field(default="127.0.0.1", description="address the API binds to")
    api_port: int = Field(default=8000, ge=1, le=65535, description="port the API listens on")
    api_snapshot_tail: int = Field(
        default=2000,
        ge=10,
        description="records per partition read back from rates.latest to rebuild the snapshot",
    )
