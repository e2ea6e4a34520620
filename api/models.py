"""Response models of the API (for OpenAPI); separate from the topic records."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CourseV1(BaseModel):
    direction: str = Field(examples=["BTC-USD"], description="BASE-QUOTE")
    value: float = Field(
        examples=[54000.000123],
        description="the rate: a JSON number printed with the venue's own digits",
    )


class CoursesV1(BaseModel):
    exchanger: str = Field(examples=["binance"], description="the venue the rates come from")
    courses: list[CourseV1]


class ErrorBody(BaseModel):
    detail: str = Field(description="what is wrong, with the valid values where it helps")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    ready: bool
    reason: str
