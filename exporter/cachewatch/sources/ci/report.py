"""What ``POST /api/v1/ci`` takes: a job's CI cache restores and saves, validated.

Apart from the receiver (``receiver``) because pydantic builds a model's validators when the
class is made: they load with the first report or the OpenAPI document, not with the exporter.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ENTRIES = 1000  # restores or saves per report

Name = Annotated[str, Field(min_length=1, max_length=256)]
Bytes = Annotated[int, Field(ge=0, le=2**50)]


class RestoreEntry(BaseModel):
    """One restore: which CI, which cache (its key's stable prefix), how it went."""

    model_config = ConfigDict(extra="ignore")

    ci: Name
    cache: Name
    result: Literal["hit", "partial", "miss"]
    bytes: Bytes = 0


class SaveEntry(BaseModel):
    """One cache the job saved."""

    model_config = ConfigDict(extra="ignore")

    ci: Name
    cache: Name
    bytes: Bytes = 0


class JobReport(BaseModel):
    """A job's CI cache use, as ``cachewatch ingest-job`` reads it from the job's log."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, max_length=128,
                           description="Unique report id; a re-sent id is counted once.")
    ci_caches: list[RestoreEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    ci_cache_saves: list[SaveEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
