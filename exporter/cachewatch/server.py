"""The FastAPI app: routes wired to collectors, nothing else.

Every collection runs in a worker thread (``render_async``): prometheus_client collectors
are synchronous and may block on a slow target, and the event loop must stay free to answer
``/healthz`` and the other scrapes meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import ProcessCollector
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__, status_page
from .allowlist import AllowList
from .exposition import BuildInfo, Exposition
from .guard import Guard, LiveWebConfig
from .refusals import RefusalCollector
from .runtime import Runtime
from .source import ProbeTargetError, Source
from .target_collector import TargetCollector
from .webconfig import WebConfig

log = logging.getLogger("cachewatch.app")
MAX_CONCURRENT_PROBES = 16


class FastPaths:
    """Serves a few exact paths straight from raw ASGI apps, everything else by ``app``.

    Webhook receivers take thousands of small requests a second; skipping the framework's
    routing and middleware for them doubles what one core can take.
    """

    def __init__(self, app: FastAPI, paths: dict[str, ASGIApp]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        await (endpoint or self.app)(scope, receive, send)


def create_app(collectors: Sequence[Source], runtime: Runtime, *,
               probe_allow: AllowList | None = None, web: LiveWebConfig | None = None) -> Guard:
    """Wire ``/metrics``, ``/probe``, ``/healthz``, ``/readyz`` and ``/`` to the collectors,
    behind the web config's basic auth, headers and rate limit (``guard``).

    ``probe_allow`` (``probe.allow``): the hosts ``/probe`` may read besides configured
    targets; none by default. The app owns ``runtime``: its pools close when the app shuts down.
    """
    health = runtime.health
    allow = probe_allow if probe_allow is not None else AllowList()
    web = web if web is not None else LiveWebConfig(WebConfig())
    exposition = Exposition([*collectors, BuildInfo(), RefusalCollector(runtime.refusals),
                             runtime.state,
                             ProcessCollector(registry=None)], runtime)
    by_name = {c.name: c for c in collectors}
    # Probes beyond this many at once are refused (503) rather than queued without bound.
    probes = asyncio.Semaphore(MAX_CONCURRENT_PROBES)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for collector in collectors:
            collector.start()
        # Long-lived start-up objects (FastAPI, pydantic, prometheus_client) leave the cyclic
        # GC's view: otherwise each full collection rescans them, a pause inside some scrapes.
        gc.collect()
        gc.freeze()
        # One round right away, so /readyz turns ready without waiting for Prometheus.
        threading.Thread(target=lambda: list(exposition.collect()), daemon=True,
                         name="cachewatch-warmup").start()
        yield
        for collector in collectors:
            collector.close()
        runtime.close()
        guarded.auth.close()

    app = FastAPI(title="cachewatch", version=__version__, lifespan=lifespan,
                  redirect_slashes=False)
    app.state.exposition = exposition
    for collector in collectors:
        if (router := collector.router()) is not None:
            app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = await exposition.render_async(request.headers.get("accept"))
        return _maybe_gzip(request, body, content_type)

    @app.get("/probe", include_in_schema=False)
    async def probe(
        request: Request,
        target: str | None = Query(None, description="A configured target name or an address"
                                   " that probe.allow lists, like redis://host:port"),
        module: str = Query("redis", description="Which collector reads the target."),
    ) -> Response:
        one = _probe_collector(by_name, target, module, allow)
        if isinstance(one, Response):
            return one
        if probes.locked():
            return PlainTextResponse(
                f"more than {MAX_CONCURRENT_PROBES} probes at once; retry, or lower the scrape "
                "concurrency\n", status_code=503, headers={"Retry-After": "1"})
        async with probes:
            body, content_type = await Exposition([one], runtime).render_async(
                request.headers.get("accept"), probe=True)
        return _maybe_gzip(request, body, content_type)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready = health.readiness()
        return JSONResponse({"ready": all(ready.values()), "collectors": ready},
                            status_code=200 if all(ready.values()) else 503)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(status_page.render(health.states(), health.readiness()))

    fast: dict[str, ASGIApp] = {}
    for collector in collectors:
        fast.update(collector.fast_routes())
    guarded = Guard(FastPaths(app, fast), web, runtime.refusals,
                    bearer_paths=[p for c in collectors for p in c.bearer_paths()])
    return guarded


def _probe_collector(by_name: dict[str, Source], target: str | None, module: str,
                     allow: AllowList) -> TargetCollector | Response:
    """The one-target collector ``/probe`` reads, or the 400 that says why there is none."""
    if target is None:
        return PlainTextResponse(
            "missing target: /probe?target=<a configured target name, or an address "
            "probe.allow lists, like redis://host:6379>\n", status_code=400)
    collector = by_name.get(module)
    if collector is None:
        known = ", ".join(by_name) or "none enabled"
        return PlainTextResponse(f"unknown module {module!r}; enabled collectors: {known}\n",
                                 status_code=400)
    try:
        return collector.for_probe(target, allow)
    except ProbeTargetError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)


def _maybe_gzip(request: Request, body: bytes, content_type: str) -> Response:
    """Prometheus asks for gzip; a large exposition (many targets) shrinks several-fold.

    Done here rather than by a middleware, so webhook and push requests pay nothing for it.
    Level 5: nearly level 9's ratio on exposition text at half the CPU.
    """
    if len(body) >= 4096 and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(body, compresslevel=5), media_type=content_type,
                        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(body, media_type=content_type)
