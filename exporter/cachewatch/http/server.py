"""The FastAPI application: routes wired to collectors, nothing else.

A scrape runs on the event loop (``Exposition.render_async``): targets read by coroutines wait
side by side under their deadline, collectors that block read on worker threads, and everything
else answers from memory, so the loop stays free to answer ``/healthz`` and other scrapes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..collectors.health import Health
from ..metrics.cardinality import CapOverflow
from ..metrics.exposition import BuildInfo, Exposition, ProcessMetrics
from ..runtime import Runtime
from ..source import ProbeTargetError, Source
from ..sources import layers, probe_examples, sections
from ..status.history import History, Snapshot
from ..status.settings import MIN_LOOKUPS
from .allowlist import AllowList
from .docs import add_redoc
from .guard import Guard, LiveWebConfig
from .refusals import RefusalCollector
from .scrape import MetricsEndpoint, compressed, response_headers
from .webconfig import WebConfig

log = logging.getLogger("cachewatch.app")
MAX_CONCURRENT_PROBES = 16


class FastPaths:
    """Serves a few exact paths straight from raw ASGI applications, everything else by the
    FastAPI application.

    Webhook receivers take thousands of small requests a second; skipping the framework's
    routing and middleware for them doubles what one core can take. ``receivers`` are mounted
    on the application by the first request for a path it does not serve yet (``ready``).
    """

    def __init__(self, app: FastAPI, paths: dict[str, ASGIApp], receivers: Receivers) -> None:
        self.app = app
        self.paths = paths
        self.receivers = receivers
        self.ready = {getattr(route, "path", "") for route in app.routes} - {app.openapi_url}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            endpoint = self.paths.get(path)
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
            if path not in self.ready:
                self.receivers.mount()
        await self.app(scope, receive, send)


class Receivers:
    """The collectors' routers, mounted on the application when first needed: by a request for
    one of their paths, for ``/openapi.json`` or for a path nobody serves.

    A router declares its request models for the OpenAPI document, and building them costs
    a sidecar more memory than the rest of its receiver; a scrape-only exporter (or one fed
    through the raw fast routes) never pays for them. They take the place they would have
    had if mounted at start-up (ahead of the core routes), so the document stays the same.
    """

    def __init__(self, app: FastAPI, collectors: Sequence[Source]) -> None:
        self.app = app
        self.collectors: Sequence[Source] | None = collectors
        self.at = len(app.router.routes)
        self.paths: set[str] = set()  # the routers' paths: operations taking a bearer token

    def mount(self) -> None:
        """Include every collector's router, once (on the event loop: nothing runs between)."""
        if self.collectors is None:
            return
        collectors, self.collectors = self.collectors, None
        routes = self.app.router.routes
        before = len(routes)
        for collector in collectors:
            if (router := collector.router()) is not None:
                self.app.include_router(router)
                self.paths.update(route.path for route in router.routes)  # type: ignore[attr-defined]
        added = routes[before:]
        del routes[before:]
        routes[self.at:self.at] = added


def create_app(collectors: Sequence[Source], runtime: Runtime, *,
               probe_allow: AllowList | None = None, web: LiveWebConfig | None = None,
               goals: tuple[Any, int] = (None, MIN_LOOKUPS)) -> Guard:
    """Wire ``/metrics``, ``/probe``, ``/healthz``, ``/readyz`` and ``/`` to the collectors,
    behind the web config's basic auth, headers and rate limit (``guard``).

    ``probe_allow`` (``probe.allow``): the hosts ``/probe`` may read besides configured
    targets; none by default. The application owns ``runtime``: its pools close when it shuts down.
    ``goals``: the thresholds the status page holds caches to (None: the bundle's defaults) and
    the lookups a cache must have seen before it can be below goal.
    """
    allow = probe_allow if probe_allow is not None else AllowList()
    web = web if web is not None else LiveWebConfig(WebConfig())
    # The status page's last hour, sampled from scrapes (or on its own when nobody scrapes).
    history = History()
    exposition = Exposition([*collectors, BuildInfo(), RefusalCollector(runtime.refusals),
                             CapOverflow(collectors), runtime.state, ProcessMetrics()],
                            observe=history.observe)
    closing: list[Callable[[], None]] = [runtime.close]
    # /docs and /redoc with their assets from an installed package: no CDN, works offline.
    app = FastAPIOffline(title="cachewatch", version=__version__,
                         lifespan=_lifespan(collectors, exposition, history, closing),
                         redirect_slashes=False, description=_description(),
                         favicon_url="data:,", openapi_tags=_TAGS, redoc_url=None)
    add_redoc(app, "cachewatch")
    app.state.exposition = exposition
    receivers = Receivers(app, collectors)
    _document(app, collectors, receivers)
    _scrape_routes(app, exposition, {c.name: c for c in collectors}, allow)
    _page_routes(app, runtime.health, exposition, history, {c.name: c for c in collectors},
                 goals)
    fast: dict[str, ASGIApp] = {"/metrics": MetricsEndpoint(exposition, app)}
    for collector in collectors:
        fast.update(collector.fast_routes())
    guarded = Guard(FastPaths(app, fast, receivers), web, runtime.refusals,
                    bearer_paths=[p for c in collectors for p in c.bearer_paths()],
                    budget=runtime.bodies)
    closing.append(guarded.auth.close)
    return guarded


def _lifespan(collectors: Sequence[Source], exposition: Exposition, history: History,
              closing: list[Callable[[], None]]) -> Callable[[FastAPI], Any]:
    """Start the collectors and the history's sampler; on shutdown stop them, then ``closing``
    in order (the runtime's pools, the guard's auth workers)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for collector in collectors:
            collector.start()
        # Long-lived start-up objects (FastAPI, pydantic, prometheus_client) leave the cyclic
        # GC's view: otherwise each full collection rescans them, a pause inside some scrapes.
        gc.collect()
        gc.freeze()
        # One round right away, so /readyz turns ready without waiting for Prometheus.
        warmup = asyncio.ensure_future(exposition.collect_async())
        sampler = asyncio.ensure_future(history.run(exposition.collect_async))
        yield
        warmup.cancel()
        sampler.cancel()
        for collector in collectors:
            collector.close()
        for close in closing:
            close()
        log.info("cachewatch stopped")

    return lifespan


def _scrape_routes(app: FastAPI, exposition: Exposition, by_name: dict[str, Source],
                   allow: AllowList) -> None:
    """``/metrics`` and ``/probe``."""
    # Probes beyond this many at once are refused (503) rather than queued without bound.
    probes = asyncio.Semaphore(MAX_CONCURRENT_PROBES)
    default_module = next(iter(probe_examples()), "")

    # Served by scrape.MetricsEndpoint ahead of the framework; declared here for the OpenAPI
    # document, and answering alike for a caller of the framework alone.
    @app.get("/metrics", tags=["scrape"], summary="Every enabled collector, for Prometheus",
             response_class=Response, responses=_EXPOSITION)
    async def metrics(request: Request) -> Response:
        """Prometheus text format, or OpenMetrics when the `Accept` header asks for it; gzip
        when `Accept-Encoding` asks and the body is over 4 KiB. Targets are read now, side by
        side, each under its collector's `timeout` (a slow one reports `up 0`)."""
        body, content_type = await exposition.render_async(request.headers.get("accept"))
        return _exposition(request, body, content_type)

    @app.get("/probe", tags=["scrape"], summary="One target, read now (multi-target pattern)",
             response_class=Response,
             responses={**_EXPOSITION, 400: {"description": "Unknown target or module, or a "
                                             "malformed address; the text says which"},
                        503: {"description": "Too many probes at once; retry"}},
             openapi_extra={"parameters": _probe_parameters()})
    async def probe(request: Request) -> Response:
        """What `/metrics` says about one target, like blackbox_exporter's `/probe`: a
        configured target's name or an address. Credentials are never taken from the query."""
        # Read here, documented in _probe_parameters: typed query parameters would make FastAPI
        # load pydantic's v1 compatibility layer at start-up, most of a megabyte for two strings.
        query = request.query_params
        one = _probe_collector(by_name, query.get("target"),
                               query.get("module", default_module), allow)
        if isinstance(one, Response):
            return one
        if probes.locked():
            return PlainTextResponse(
                f"more than {MAX_CONCURRENT_PROBES} probes at once; retry, or lower the scrape "
                "concurrency\n", status_code=503, headers={"Retry-After": "1"})
        async with probes:
            body, content_type = await Exposition([one]).render_async(
                request.headers.get("accept"))
        return _exposition(request, body, content_type)


def _page_routes(app: FastAPI, health: Health, exposition: Exposition,
                 history: History, sources: dict[str, Source],
                 goals: tuple[Any, int]) -> None:
    """``/healthz``, ``/readyz`` and the status page ``/`` (``sources``: the collectors, for
    their sections of it; ``goals``: ``create_app``'s). The page's modules and the goals it
    colours against (the bundle's thresholds models) load with the first visit: a scrape-only
    exporter never pays for them."""
    page: dict[str, Any] = {}

    @app.get("/healthz", tags=["health"], summary="Liveness: 200 while the process serves",
             response_class=PlainTextResponse)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", tags=["health"], summary="Readiness: 200 once every collector that "
             "reads targets has completed a round", responses={503: {"description": "Not yet; "
                                                                   "the body says which"}})
    async def readyz() -> JSONResponse:
        ready = health.readiness()
        return JSONResponse({"ready": all(ready.values()), "collectors": ready},
                            status_code=200 if all(ready.values()) else 503)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        if not page:
            from ..status import page as status_page
            from ..status.goals import Goals

            page.update(module=status_page, goals=Goals.of(*goals))
        status_page, now_metrics = page["module"], await exposition.collect_async()
        return HTMLResponse(status_page.render(
            history.view(), history.fold(Snapshot.of(now_metrics)), time.time(),
            health.states(), health.readiness(), status_page.findings(now_metrics),
            goals=page["goals"], metrics=now_metrics, sources=sources))


def _probe_collector(by_name: dict[str, Source], target: str | None, module: str,
                     allow: AllowList) -> Source | Response:
    """The one-target collector ``/probe`` reads, or the 400 that says why there is none."""
    if target is None:
        return PlainTextResponse(
            "missing target: /probe?target=<a configured target name, or an address "
            f"probe.allow lists, like {_probe_example()}>\n", status_code=400)
    collector = by_name.get(module)
    if collector is None:
        known = ", ".join(by_name) or "none enabled"
        return PlainTextResponse(f"unknown module {module!r}; enabled collectors: {known}\n",
                                 status_code=400)
    try:
        return collector.for_probe(target, allow)
    except ProbeTargetError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)




def _description() -> str:
    """The API's description, naming the registered sources' layers."""
    titles = [layer.title for layer in layers()]
    listed = ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else "".join(titles)
    return (f"Cache hit rate and latency for Prometheus: {listed} under one metric contract. "
            "The status page is at `/`.")


def _probe_example() -> str:
    """An address the default ``/probe`` module takes."""
    return next(iter(probe_examples().values()), "proto://host:port")


_TAGS = [{"name": "scrape", "description": "What Prometheus reads"},
         {"name": "health", "description": "For orchestrators' probes"}]


def _probe_parameters() -> list[dict[str, Any]]:
    """``/probe``'s query parameters, for the OpenAPI document."""
    return [
        {"name": "target", "in": "query", "required": True, "schema": {"type": "string"},
         "description": "A configured target name or an address that probe.allow lists, like "
         f"{_probe_example()}"},
        {"name": "module", "in": "query", "required": False,
         "schema": {"type": "string", "default": next(iter(probe_examples()), "")},
         "description": "Which collector reads the target."},
    ]


_EXPOSITION: dict[int | str, dict[str, Any]] = {200: {
    "description": "The exposition",
    "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}},
                "application/openmetrics-text; version=1.0.0": {"schema": {"type": "string"}}}}}


def _document(app: FastAPI, collectors: Sequence[Source], receivers: Receivers) -> None:
    """The OpenAPI document also lists the raw endpoints served ahead of the framework (the
    receivers' webhooks), and marks every receiver's operation with the bearer token it takes
    (the paths of the collectors' routers, mounted first), so a client generator sends it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            receivers.mount()
            schema = generate()
            for collector in collectors:
                schema["paths"].update(collector.openapi_paths())
            for path in receivers.paths:
                for operation in schema["paths"].get(path, {}).values():
                    operation.setdefault("security", [{"bearer": []}])
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer",
                "description": f"The receiver's token ({_token_settings()}), when one is set"}
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _token_settings() -> str:
    """The settings that hold a receiver's token (```builds.token```, ...)."""
    return ", ".join(f"`{name}.token`" for name, section in sections().items()
                     if "token" in section.settings.model_fields)


def _exposition(request: Request, body: bytes, content_type: str) -> Response:
    """An exposition answer through the framework: compressed and labelled as the raw
    ``/metrics`` path writes it (``scrape.compressed``)."""
    body, encoding = compressed(body, request.headers.get("accept-encoding"))
    response = Response(body)
    response.raw_headers = response_headers(body, content_type, encoding)
    return response
