"""CI caches, ingested: ``POST /api/v1/ci/caches`` in, restores, bytes and saves out.

``cachewatch ingest-job`` reads a finished job's log (``joblog``) and posts its restores and
saves here with an id, so a report sent twice counts once. Each restore is also a lookup under
``layer="ci"``: hit on the primary key, miss otherwise (a partial restore still leaves the job
rebuilding what changed).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ...metrics.cached import CachedFamilies
from ...metrics.cardinality import LabelCap
from ...metrics.contract import Families
from ...metrics.labels import id_bytes, safe_label
from ...receiving import body_schema, guarded_body
from ...runtime import Runtime
from ...source import Source
from ...state import Change, Counts, Ledger, StateError
from . import contract
from .settings import CiSettings

if TYPE_CHECKING:  # the report's models load with the first report, or the OpenAPI document
    from .report import JobReport

log = logging.getLogger("cachewatch.ci")

REJECT_REASONS = ("auth", "too_large", "malformed", "duplicate")
_SEEN_IDS = 10_000  # report ids remembered to drop re-sent reports

RESTORES = contract.CI_CACHE_RESTORES.name
BYTES = contract.CI_CACHE_RESTORED_BYTES.name
SAVES = contract.CI_CACHE_SAVES.name
REJECTED = contract.CI_INGEST_REJECTED.name


class CiCacheCollector(Source):
    """Counts every reported restore and save into the state store; exported on each scrape."""

    name = "ci"

    def __init__(self, settings: CiSettings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        self._cached = CachedFamilies()  # made again only when the ledger moved
        self._pairs = LabelCap(settings.max_caches)
        for key, _ in ledger.items():  # restored series keep their labels after a restart
            if key[0] in (RESTORES, SAVES):
                self._pairs(f"{key[1]}\0{key[2]}")

    def _labels(self, ci: str, cache: str) -> tuple[str, str]:
        ci, cache = safe_label(ci), safe_label(cache)
        return ("other", "other") if self._pairs(f"{ci}\0{cache}") == "other" else (ci, cache)

    def change(self, report: JobReport) -> Change:
        """What one report counts; de-duplicated on its id when it has one."""
        counts: Counts = defaultdict(float)
        for restore in report.ci_caches:
            ci, cache = self._labels(restore.ci, restore.cache)
            counts[(RESTORES, ci, cache, restore.result)] += 1.0
            counts[(BYTES, ci, cache)] += float(restore.bytes)
        for save in report.ci_cache_saves:
            counts[(SAVES, *self._labels(save.ci, save.cache))] += 1.0
        once = hashlib.blake2b(id_bytes(report.id), digest_size=16).digest() \
            if report.id is not None else None
        return Change(dict(counts), once, {(REJECTED, "duplicate"): 1.0})

    async def record(self, report: JobReport) -> bool:
        """Count one report once stored; ``False`` if its id was already counted."""
        outcome = await self.ledger.record([self.change(report)])
        if outcome.applied[0]:
            log.info("ci job ingested", extra={"restores": len(report.ci_caches),
                                               "saves": len(report.ci_cache_saves)})
        return outcome.applied[0]

    def reject(self, reason: str) -> None:
        self.ledger.record_later([Change({(REJECTED, reason): 1.0})])

    def collect(self) -> Any:
        return iter(self._cached.get(self.ledger.version, self._families))

    def _families(self) -> Families:
        out = Families()
        stored = dict(sorted(self.ledger.items()))
        lookups: dict[tuple[str, str], float] = defaultdict(float)
        for key, value in stored.items():
            name, labels = key[0], key[1:]
            if name == REJECTED:
                continue
            spec = contract.SPECS[name]
            out.add(spec, dict(zip(spec.labels, labels, strict=True)), value)
            if name == RESTORES:
                lookups[(labels[1], "hit" if labels[2] == "hit" else "miss")] += value
        for (cache, result), count in sorted(lookups.items()):
            out.add(contract.CACHE_LOOKUPS, {"layer": contract.LAYER, "cache": cache,
                                             "result": result}, count)
        for reason in REJECT_REASONS:
            out.add(contract.CI_INGEST_REJECTED, {"reason": reason},
                    stored.get((REJECTED, reason), 0.0))
        return out

    def bearer_paths(self) -> tuple[str, ...]:
        return ("/api/v1/ci/caches",) if self.settings.token else ()

    def router(self) -> APIRouter:
        from .report import JobReport

        router = APIRouter(tags=["ci"])

        @router.post(
            "/api/v1/ci/caches", status_code=202,
            summary="Ingest one CI job's cache restores and saves",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": body_schema(JobReport)}}}},
            responses={400: {"description": "Malformed body"}, 401: {"description": "Token"},
                       413: {"description": "Body over ci.max_body_bytes"},
                       503: {"description": "Not stored now; send the same id again"}},
        )
        async def ingest(request: Request) -> JSONResponse:
            """A ``JobReport``: ``{"id": ..., "ci_caches": [...], "ci_cache_saves": [...]}``."""
            return await self._ingest(request)

        return router

    async def _ingest(self, request: Request) -> JSONResponse:
        body = await guarded_body(request, self.settings.token, self.settings.max_body_bytes,
                                  "ci", self.reject)
        if isinstance(body, JSONResponse):
            return body
        from .report import JobReport

        try:
            report = JobReport.model_validate_json(body)
        except ValidationError as exc:
            self.reject("malformed")
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                                 for e in exc.errors(include_url=False)[:5])
            return JSONResponse({"error": problems}, status_code=400)
        try:
            counted = await self.record(report)
        except StateError as exc:
            return JSONResponse({"error": f"report not stored, retry: {exc}"}, status_code=503,
                                headers={"Retry-After": "1"})
        if not counted:
            return JSONResponse({"accepted": False, "duplicate": True}, status_code=200)
        return JSONResponse({"accepted": True, "restores": len(report.ci_caches),
                             "saves": len(report.ci_cache_saves)}, status_code=202)


def build(section: CiSettings, runtime: Runtime) -> CiCacheCollector:
    """CI cache ingestion, counting into the runtime's state store."""
    return CiCacheCollector(section, runtime.state.ledger("ci", _SEEN_IDS))
