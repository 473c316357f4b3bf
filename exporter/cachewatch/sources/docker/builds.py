"""Docker builds, ingested: ``POST /api/v1/builds`` in, per-image layer-cache metrics out.

Builds reach the exporter from ``cachewatch ingest-build`` / ``cachewatch build`` (a parsed
summary) or from any CI step that posts its raw log. Each cacheable step is a cache lookup
(``CACHED`` = hit) under ``layer="docker_build"``; the build's cache buster is counted by
normalised instruction so the dashboard can name the line that keeps invalidating the cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from ... import contract
from ...cardinality import LabelCap
from ...contract import Families, Layer
from ...receiving import guarded_body
from ...runtime import Runtime
from ...source import Source
from .buildlog import BuildSummary, normalise_instruction, parse_bytes
from .findings import DockerfileFindings
from .settings import BuildSettings

log = logging.getLogger("cachewatch.builds")

REJECT_REASONS = ("auth", "too_large", "malformed", "duplicate")
SOURCE = "log"  # the `source` label: these builds come from ingested logs
_SEEN_IDS = 10_000  # build ids remembered to drop re-sent submissions


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


class BuildCollector(Source):
    """Holds counters of every ingested build; exported on each scrape."""

    name = "builds"

    def __init__(self, settings: BuildSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pairs = LabelCap(settings.max_images)  # (image, target) pairs, not each apart
        self._buster_labels = LabelCap(settings.max_cache_busters)
        self._builds: dict[tuple[str, str, str], int] = defaultdict(int)
        self._steps: dict[tuple[str, str, str], int] = defaultdict(int)
        self._seconds: dict[tuple[str, str, str], float] = defaultdict(float)
        self._rebuild: dict[tuple[str, str], float] = defaultdict(float)
        self._busters: dict[tuple[str, str], int] = defaultdict(int)
        self._buster_seconds: dict[tuple[str, str], float] = defaultdict(float)
        self._dockerfiles = DockerfileFindings(settings.dockerfiles)
        self._rejected = dict.fromkeys(REJECT_REASONS, 0)
        self._seen: OrderedDict[str, None] = OrderedDict()
        spec = contract.DOCKER_BUILD_DURATION
        self._duration = Histogram(spec.name, spec.help, spec.labels,
                                   buckets=contract.BUILD_DURATION_BUCKETS, registry=None)

    def record(self, summary: SubmittedSummary | BuildSummary, image: str, target: str,
               build_id: str | None = None) -> bool:
        """Count one build; ``False`` if ``build_id`` was already counted."""
        with self._lock:
            if build_id is not None:
                if build_id in self._seen:
                    self._rejected["duplicate"] += 1
                    return False
                self._seen[build_id] = None
                while len(self._seen) > _SEEN_IDS:
                    self._seen.popitem(last=False)
            if self._pairs(f"{image}\0{target}") == "other":
                image, target = "other", "other"
            self._builds[(image, target, summary.status)] += 1
            self._steps[(image, target, "hit")] += summary.hits
            self._steps[(image, target, "miss")] += summary.misses
            self._seconds[(image, target, "executed")] += summary.executed_seconds
            self._seconds[(image, target, "cached")] += summary.cached_seconds
            self._rebuild[(image, target)] += summary.rebuild_seconds
            if summary.cache_buster:
                instruction = normalise_instruction(summary.cache_buster)
                pair = self._buster_labels(f"{image}\0{instruction}")
                key = (image, instruction) if pair != "other" else ("other", "other")
                self._busters[key] += 1
                self._buster_seconds[key] += summary.rebuild_seconds
            self._duration.labels(image, target).observe(summary.duration_seconds)
        log.info("build ingested", extra={
            "image": image, "target": target, "status": summary.status, "hits": summary.hits,
            "lookups": summary.lookups, "cache_buster": summary.cache_buster})
        return True

    def reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    def collect(self) -> Any:
        out = Families()
        with self._lock:
            per_image: dict[tuple[str, str], int] = defaultdict(int)
            for (image, target, result), count in self._steps.items():
                out.add(contract.DOCKER_BUILD_STEPS,
                        {"image": image, "target": target, "result": result, "source": SOURCE},
                        count)
                per_image[(image, result)] += count
            for (image, result), count in per_image.items():
                out.add(contract.CACHE_LOOKUPS, {"layer": Layer.DOCKER_BUILD.value,
                                                 "cache": image, "result": result}, count)
            for (image, target, status), count in self._builds.items():
                out.add(contract.DOCKER_BUILDS, {"image": image, "target": target,
                                                 "status": status, "source": SOURCE}, count)
            for (image, target, result), seconds in self._seconds.items():
                out.add(contract.DOCKER_BUILD_STEP_SECONDS,
                        {"image": image, "target": target, "result": result}, seconds)
            for (image, target), seconds in self._rebuild.items():
                out.add(contract.DOCKER_BUILD_REBUILD_SECONDS,
                        {"image": image, "target": target}, seconds)
            for (image, instruction), count in self._busters.items():
                out.add(contract.DOCKER_BUILD_CACHE_BUSTERS,
                        {"image": image, "instruction": instruction, "source": SOURCE}, count)
            for (image, instruction), seconds in self._buster_seconds.items():
                out.add(contract.DOCKER_BUILD_CACHE_BUSTER_SECONDS,
                        {"image": image, "instruction": instruction, "source": SOURCE}, seconds)
            for reason, count in self._rejected.items():
                out.add(contract.BUILD_INGEST_REJECTED, {"reason": reason}, count)
            durations = list(self._duration.collect())
        self._dockerfiles.add_to(out)
        for metric in durations:
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
        out.extend(durations)
        yield from out

    def bearer_paths(self) -> tuple[str, ...]:
        return ("/api/v1/builds",) if self.settings.token else ()

    def router(self) -> APIRouter:
        router = APIRouter(tags=["builds"])

        @router.post(
            "/api/v1/builds", status_code=202,
            summary="Ingest one Docker build (raw log or parsed summary)",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": BuildSubmission.model_json_schema()},
                "text/plain": {"schema": {"type": "string"}}}}},
            responses={400: {"description": "Malformed body"}, 401: {"description": "Token"},
                       413: {"description": "Body over builds.max_body_bytes"}},
        )
        async def ingest(request: Request) -> JSONResponse:
            """JSON ``BuildSubmission``, or the raw log as ``text/plain`` with ``image`` (and
            optionally ``target``, ``exit_code``, ``id``) as query parameters."""
            return await self._ingest(request)

        return router

    async def _ingest(self, request: Request) -> JSONResponse:
        body = await guarded_body(request, self.settings.token, self.settings.max_body_bytes,
                                  "builds", self.reject)
        if isinstance(body, JSONResponse):
            return body
        try:
            submission = _submission(request, body)
        except (ValidationError, ValueError) as exc:
            self.reject("malformed")
            return JSONResponse({"error": _describe(exc)}, status_code=400)
        if submission.summary is not None:
            summary: SubmittedSummary | BuildSummary = submission.summary
        else:
            summary = await run_in_threadpool(
                parse_bytes, (submission.log or "").encode("utf-8", "replace"),
                submission.image, submission.target, submission.exit_code)
            if submission.duration_seconds is not None:
                summary.duration_seconds = submission.duration_seconds
        if not self.record(summary, submission.image, submission.target, submission.id):
            return JSONResponse({"accepted": False, "duplicate": True}, status_code=200)
        shown = {k: v for k, v in (summary.to_dict() if isinstance(summary, BuildSummary)
                                   else summary.model_dump()).items() if k != "records"}
        return JSONResponse({"accepted": True, "summary": shown}, status_code=202)


def _submission(request: Request, body: bytes) -> BuildSubmission:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("text/plain", "application/octet-stream"):
        params = request.query_params
        exit_code = params.get("exit_code")
        return BuildSubmission(
            image=params.get("image", ""), target=params.get("target", ""),
            id=params.get("id"), log=body.decode("utf-8", "replace"),
            exit_code=int(exit_code) if exit_code not in (None, "") else None)
    if not body.strip():
        raise ValueError("empty body: send a JSON build submission or a text/plain build log")
    return BuildSubmission.model_validate_json(body)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5])
    return str(exc)


def build(section: BuildSettings, runtime: Runtime) -> BuildCollector:
    """Build ingestion has no target to read: nothing for /readyz to wait on."""
    return BuildCollector(section)
