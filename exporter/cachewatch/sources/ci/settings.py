"""The CI caches' settings: ``POST /api/v1/ci/caches`` and what it may hold."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ...fields import flag


class CiSettings(BaseModel):
    """CI cache ingestion: what ``cachewatch ingest-job`` reads from a job's log."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True,
                          description="accept CI cache reports on `POST /api/v1/ci/caches`")
    token: SecretStr | None = Field(
        default=None,
        description="bearer token that `POST /api/v1/ci/caches` requires (`ingest-job` sends"
        " its `--token` to both this and the builds API: set both to the same value)",
        json_schema_extra=flag("--ci-token", metavar="TOKEN",
                               help="Bearer token POST /api/v1/ci/caches requires; prefer the"
                               " env var"))
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="larger request bodies get `413`")
    max_caches: int = Field(
        default=500, ge=1,
        description="distinct (`ci`, `cache`) label pairs; more fold into `other`")
