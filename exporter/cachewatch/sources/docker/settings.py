"""The Docker source's settings: build ingestion (``builds``) and the Engine collector (``docker``).

Two sections, because they are switched on separately: ingestion takes pushed build logs and needs
nothing, while the Engine collector needs read access to the Docker socket and is off by default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from ...fields import Seconds, flag


class BuildSettings(BaseModel):
    """Build ingestion: ``POST /api/v1/builds`` and what it may hold."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="accept builds on `POST /api/v1/builds`")
    token: SecretStr | None = Field(
        default=None, description="bearer token that `POST /api/v1/builds` requires",
        json_schema_extra=flag("--builds-token", metavar="TOKEN",
                               help="Bearer token POST /api/v1/builds requires; prefer the env"
                               " var"))
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="larger request bodies get `413`")
    max_images: int = Field(
        default=200, ge=1,
        description="distinct `image` (and `target`) label values; more fold into `other`")
    max_cache_busters: int = Field(
        default=500, ge=1,
        description="distinct (image, instruction) pairs; more fold into `other`")
    dockerfiles: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Path] = (
        Field(default_factory=dict, max_length=1000, json_schema_extra=flag(default="none"),
              description="image name to Dockerfile path: export `cachewatch_dockerfile_findings`"
              " (`cachewatch doctor`'s findings per rule; the file's folder is the build"
              " context), re-read when the file changes; the env var takes JSON, like"
              ' `{"app": "/src/app/Dockerfile"}`'))


class DockerSettings(BaseModel):
    """The Docker Engine collector (read-only API calls) and its events watcher."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="read the Docker Engine (needs its socket, so off by default)")
    host: str = Field(
        default_factory=lambda: os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        description="the engine to read",
        json_schema_extra=flag(
            "--docker-host", default="`$DOCKER_HOST` or `unix:///var/run/docker.sock`",
            metavar="URL", help="Docker Engine for the docker collector (--enable-collector"
            " docker)"))
    name: str = Field(default="local", description="the `host` label")
    timeout: Seconds = Field(default=5.0, gt=0, le=60,
                             description="deadline for `GET /system/df`",
                             json_schema_extra=flag(default="5s"))
    events: bool = Field(default=True, description="count image and builder events, and the"
                         " layers each image pull reused or fetched")
    history: bool = Field(
        default=True,
        description="count builds from `image tag` events and image history: steps reused or"
        " rebuilt and the cache buster per image, with no log piping (needs `events`)")
    history_max_images: int = Field(
        default=200, ge=1,
        description="distinct `image` label values from the engine's history, and as many again"
        " from its pulls; more fold into `other`")
