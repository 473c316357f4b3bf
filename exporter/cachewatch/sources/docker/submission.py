"""What ``POST /api/v1/builds`` takes: a build's raw log or its parsed summary, validated.

Apart from the receiver (``builds``) because pydantic builds a model's validators when the
class is made: they load with the first build or the OpenAPI document, not with the exporter.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Seconds = Annotated[float, Field(ge=0, le=7 * 86400, allow_inf_nan=False)]
Steps = Annotated[int, Field(ge=0, le=1_000_000)]


class SubmittedSummary(BaseModel):
    """The summary ``cachewatch ingest-build`` sends (extra fields, like records, ignored)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["success", "failed", "cancelled"]
    duration_seconds: Seconds
    lookups: Steps
    hits: Steps
    misses: Steps
    executed_seconds: Seconds = 0.0
    cached_seconds: Seconds = 0.0
    rebuild_seconds: Seconds = 0.0
    cache_buster: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _consistent(self) -> SubmittedSummary:
        if self.hits + self.misses != self.lookups:
            raise ValueError("hits + misses must equal lookups")
        return self


class BuildSubmission(BaseModel):
    """One build: either its raw log (any of the three formats) or a parsed summary."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=256, description="Image (or job) the build makes.")
    target: str = Field(default="", max_length=128, description="Dockerfile --target, if any.")
    id: str | None = Field(default=None, max_length=128,
                           description="Unique build id; a re-sent id is counted once.")
    log: str | None = Field(default=None, description="The build's output, as printed.")
    exit_code: int | None = Field(default=None, description="The build command's exit code.")
    duration_seconds: float | None = Field(default=None, ge=0, le=7 * 86400)
    summary: SubmittedSummary | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BuildSubmission:
        if (self.log is None) == (self.summary is None):
            raise ValueError("send exactly one of log (raw build output) or summary")
        return self
