"""What the status page holds caches to (``status.*``): the thresholds file the bundle reads too,
and how many lookups a cache must have seen before its hit rate can be "below goal"."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..fields import flag, readable_file

# Fewer lookups than this in the window and a hit rate says little: never "below goal".
MIN_LOOKUPS = 100


class StatusSettings(BaseModel):
    """The status page's goals: the same numbers the alerts fire at, set in one file."""

    model_config = ConfigDict(extra="forbid")

    thresholds_file: Path | None = Field(
        default=None,
        description="thresholds file in YAML (`hit-rate: 0.9`, `p99: 25ms`, "
        "`build-hit-rate: 0.6`...), the one `cachewatch bundle --thresholds` reads: the status "
        "page then turns red where the alerts fire",
        json_schema_extra=flag("--thresholds", metavar="FILE",
                               default="none (the bundle's defaults: 85 %, 50 ms)"))
    min_lookups: int = Field(
        default=MIN_LOOKUPS, ge=1, le=1_000_000_000,
        description="lookups a cache must have seen in the window before the status page can "
        "call it below goal (fewer say little about a hit rate)",
        json_schema_extra=flag("--status-min-lookups"))

    _file_readable = field_validator("thresholds_file")(readable_file)
