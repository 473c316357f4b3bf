"""Docker builds, ingested: ``POST /api/v1/builds`` in, per-image layer-cache metrics out.

Builds reach the exporter from ``cachewatch ingest-build`` / ``cachewatch build`` (a parsed
summary) or from any CI step that posts its raw log. Each cacheable step is a cache lookup
(``CACHED`` = hit) under ``layer="docker_build"``; the build's cache buster is counted by
normalised instruction so the dashboard can name the line that keeps invalidating the cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client.utils import floatToGoString
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...metrics.cached import CachedFamilies
from ...metrics.cardinality import LabelCap
from ...metrics.contract import Families
from ...metrics.labels import id_bytes, safe_label
from ...receiving import body_schema, guarded_body
from ...runtime import Runtime
from ...source import Source
from ...state import Change, Counts, Ledger, StateError
from . import contract
from .last_builds import LastBuild, LastBuilds
from .settings import BuildSettings

if TYPE_CHECKING:  # the parser and the doctor load with the first build, or a Dockerfile to watch
    from .buildlog import BuildSummary
    from .findings import DockerfileFindings
    from .submission import BuildSubmission, SubmittedSummary  # with the first build, or /docs

log = logging.getLogger("cachewatch.builds")

REJECT_REASONS = ("auth", "too_large", "malformed", "duplicate", "no_build")
SOURCE = "log"  # the `source` label: these builds come from ingested logs
_SEEN_IDS = 10_000  # build ids remembered to drop re-sent submissions


class BuildCollector(Source):
    """Counts every ingested build into the runtime's state store; exported on each scrape."""

    name = "builds"

    def __init__(self, settings: BuildSettings, ledger: Ledger, source: str = SOURCE) -> None:
        """``source``: the ``source`` label of what this ledger holds. BuildKit's history
        (``buildkit.collector``) counts through one of these on a ledger of its own."""
        self.settings = settings
        self.ledger = ledger
        self.source = source
        self._pairs = LabelCap(settings.max_images)  # (image, target) pairs, not each apart
        self._buster_labels = LabelCap(settings.max_cache_busters)
        self._dockerfiles: DockerfileFindings | None = None
        self.last_builds = LastBuilds()  # for the status page
        self._cached = CachedFamilies()  # made again only when the ledger moved
        if settings.dockerfiles:
            from .findings import DockerfileFindings

            self._dockerfiles = DockerfileFindings(settings.dockerfiles)
        for key, _ in ledger.items():  # restored series keep their own labels after a restart
            if key[0] == STEPS:
                self._pairs(f"{key[1]}\0{key[2]}")
            elif key[0] == BUSTERS:
                self._buster_labels(f"{key[1]}\0{key[2]}")

    def change(self, summary: SubmittedSummary | BuildSummary, image: str, target: str,
               build_id: str | None = None) -> Change:
        """What one build counts; de-duplicated on ``build_id`` when it has one."""
        image, target = safe_label(image), safe_label(target)  # from the client or a log
        if self._pairs(f"{image}\0{target}") == "other":
            image, target = "other", "other"
        counts: Counts = {
            (contract.DOCKER_BUILDS.name, image, target, summary.status): 1.0,
            (STEPS, image, target, "hit"): float(summary.hits),
            (STEPS, image, target, "miss"): float(summary.misses),
            (SECONDS, image, target, "executed"): summary.executed_seconds,
            (SECONDS, image, target, "cached"): summary.cached_seconds,
            (contract.DOCKER_BUILD_REBUILD_SECONDS.name, image, target): summary.rebuild_seconds,
        }
        if summary.cache_buster:
            from .buildlog import normalise_instruction

            instruction = safe_label(normalise_instruction(summary.cache_buster))
            pair = self._buster_labels(f"{image}\0{instruction}")
            key = (image, instruction) if pair != "other" else ("other", "other")
            counts[(BUSTERS, *key)] = 1.0
            counts[(BUSTER_SECONDS, *key)] = summary.rebuild_seconds
        for le, edge in _EDGES:
            if summary.duration_seconds <= edge:
                counts[(DURATION_BUCKET, image, target, le)] = 1.0
        counts[(DURATION_SUM, image, target)] = summary.duration_seconds
        once = hashlib.blake2b(id_bytes(build_id), digest_size=16).digest() \
            if build_id is not None else None
        return Change(counts, once, {(REJECTED, "duplicate"): 1.0})

    async def record(self, summary: SubmittedSummary | BuildSummary, image: str, target: str,
                     build_id: str | None = None) -> bool:
        """Count one build once stored; ``False`` if ``build_id`` was already counted."""
        outcome = await self.ledger.record([self.change(summary, image, target, build_id)])
        if outcome.applied[0]:
            self.remember(summary, image)
            log.info("build ingested", extra={
                "image": image, "target": target, "status": summary.status,
                "hits": summary.hits, "lookups": summary.lookups,
                "cache_buster": summary.cache_buster})
        return outcome.applied[0]

    def remember(self, summary: SubmittedSummary | BuildSummary, image: str) -> None:
        """Keep the build as its image's last, for the status page (also called by the
        collectors that count builds through this one, from their own threads)."""
        self.last_builds.add(LastBuild(
            safe_label(image), self.source, summary.status, summary.hits, summary.misses,
            summary.cache_buster, summary.rebuild_seconds, time.time()))

    def reject(self, reason: str) -> None:
        self.ledger.record_later([Change({(REJECTED, reason): 1.0})])

    def collect(self) -> Any:
        if self._dockerfiles is not None:  # findings of files read now: made every scrape
            return iter(self._families())
        return iter(self._cached.get(self.ledger.version, self._families))

    def _families(self) -> Families:
        out = Families()
        stored = dict(sorted(self.ledger.items()))
        per_image: dict[tuple[str, str], float] = defaultdict(float)
        durations: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for key, value in stored.items():
            name, labels = key[0], key[1:]
            if name == DURATION_BUCKET:
                durations[labels[:2]][labels[2]] = value
            elif name == DURATION_SUM:
                durations[labels]["sum"] = value
            elif name != REJECTED:
                spec = contract.SPECS[name]
                if "source" in spec.labels:  # stored without it: one ledger, one source
                    labels = (*labels, self.source)
                out.add(spec, dict(zip(spec.labels, labels, strict=True)), value)
                if name == STEPS:
                    per_image[(labels[0], labels[2])] += value
        for (image, result), count in per_image.items():
            out.add(contract.CACHE_LOOKUPS, {"layer": contract.LAYER,
                                             "cache": image, "result": result}, count)
        for reason in REJECT_REASONS if self.source == SOURCE else ():  # the receiver's
            out.add(contract.BUILD_INGEST_REJECTED, {"reason": reason},
                    stored.get((REJECTED, reason), 0.0))
        for (image, target), buckets in durations.items():
            cumulative = [(le, buckets.get(le, 0.0)) for le, _ in _EDGES]
            out.add_histogram(contract.DOCKER_BUILD_DURATION, {"image": image, "target": target},
                              cumulative, buckets.get("sum", 0.0))
        if self._dockerfiles is not None:
            self._dockerfiles.add_to(out)
        return out

    def bearer_paths(self) -> tuple[str, ...]:
        return ("/api/v1/builds",) if self.settings.token else ()

    def router(self) -> APIRouter:
        from .submission import BuildSubmission

        router = APIRouter(tags=["builds"])

        @router.post(
            "/api/v1/builds", status_code=202,
            summary="Ingest one Docker build (raw log or parsed summary)",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": body_schema(BuildSubmission)},
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
        from .buildlog import BuildSummary, parse_builds

        if submission.summary is not None:
            summaries: list[SubmittedSummary | BuildSummary] = [submission.summary]
        else:  # a text/plain log is parsed as it came: no copy of it as text on the loop
            raw = body if _plain(request) else (submission.log or "").encode(
                "utf-8", "replace")
            summaries = list(await run_in_threadpool(
                parse_builds, raw, submission.image, submission.target, submission.exit_code))
            if not summaries:
                self.reject("no_build")
                return JSONResponse({"error": "no docker build in this log: nothing counted"},
                                    status_code=422)
            if submission.duration_seconds is not None and len(summaries) == 1:
                summaries[0].duration_seconds = submission.duration_seconds
        try:
            counted = await self.record_all(summaries, submission)
        except StateError as exc:
            return JSONResponse({"error": f"build not stored, retry: {exc}"}, status_code=503,
                                headers={"Retry-After": "1"})
        if not counted:
            return JSONResponse({"accepted": False, "duplicate": True}, status_code=200)
        shown = [{k: v for k, v in (summary.to_dict() if isinstance(summary, BuildSummary)
                                    else summary.model_dump()).items() if k != "records"}
                 for summary in summaries]
        answer = {"accepted": True, "summary": shown[0]} if len(shown) == 1 else \
            {"accepted": True, "builds": shown}
        return JSONResponse(answer, status_code=202)

    async def record_all(self, summaries: list[SubmittedSummary | BuildSummary],
                         submission: BuildSubmission) -> bool:
        """Count every build of one submission at once; a raw log's builds after the first
        are de-duplicated on ``<id>#<n>``. ``False`` if the submission was counted before."""
        changes = []
        for number, summary in enumerate(summaries, 1):
            image = getattr(summary, "image", "") if len(summaries) > 1 else submission.image
            build_id = submission.id if number == 1 or submission.id is None \
                else f"{submission.id}#{number}"
            changes.append(self.change(summary, image or submission.image, submission.target,
                                       build_id))
        outcome = await self.ledger.record(changes)
        for summary, applied in zip(summaries, outcome.applied, strict=True):
            if applied:
                self.remember(summary, getattr(summary, "image", "") or submission.image)
                log.info("build ingested", extra={
                    "image": getattr(summary, "image", submission.image),
                    "status": summary.status, "hits": summary.hits,
                    "lookups": summary.lookups, "cache_buster": summary.cache_buster})
        return outcome.applied[0]


def _plain(request: Request) -> bool:
    """A raw log (its body is parsed as bytes), not a JSON submission."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in ("text/plain", "application/octet-stream")


def _submission(request: Request, body: bytes) -> BuildSubmission:
    """The submission; a raw log's text stays in ``body`` (``log`` is empty)."""
    from .submission import BuildSubmission

    if _plain(request):
        params = request.query_params
        exit_code = params.get("exit_code")
        return BuildSubmission(
            image=params.get("image", ""), target=params.get("target", ""),
            id=params.get("id"), log="",
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


STEPS = contract.DOCKER_BUILD_STEPS.name
SECONDS = contract.DOCKER_BUILD_STEP_SECONDS.name
BUSTERS = contract.DOCKER_BUILD_CACHE_BUSTERS.name
BUSTER_SECONDS = contract.DOCKER_BUILD_CACHE_BUSTER_SECONDS.name
REJECTED = contract.BUILD_INGEST_REJECTED.name
DURATION_BUCKET = contract.DOCKER_BUILD_DURATION.name + "_bucket"
DURATION_SUM = contract.DOCKER_BUILD_DURATION.name + "_sum"
# The histogram is kept as counters (one per bucket edge), so it is stored like every count.
_EDGES = [*((floatToGoString(edge), edge) for edge in contract.BUILD_DURATION_BUCKETS),
          ("+Inf", float("inf"))]


def build(section: BuildSettings, runtime: Runtime) -> BuildCollector:
    """Build ingestion, counting into the runtime's state store."""
    return BuildCollector(section, runtime.state.ledger("builds", _SEEN_IDS))
