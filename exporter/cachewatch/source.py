"""The narrow interface between the core and a source: what the core needs and nothing more.

A source package (``cachewatch.sources.<name>``) declares a ``SourcePackage``: its settings
sections, a factory per section that builds a ``Source`` (a prometheus_client collector with
optional background work, ``/probe`` support and routes), its CLI commands and its bundle part.
The core never imports a source by name except in the one registration list,
``cachewatch.sources.packages()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable

    import typer
    from fastapi import APIRouter
    from pydantic import BaseModel
    from starlette.types import ASGIApp

    from .http.allowlist import AllowList
    from .runtime import Runtime


class ProbeTargetError(ValueError):
    """``/probe`` was given a target this collector cannot or may not read; the message says why."""


class Source(Collector):
    """One source of metrics: a prometheus_client collector, plus optional background work,
    ``/probe`` support and HTTP routes (webhooks, push APIs) that feed it.

    ``collect()`` of a source that is not a target collector runs on the event loop during a
    scrape: it answers from memory (what its routes received) and never waits on I/O; a source
    that must read something remote is a ``TargetCollector`` or ``AsyncTargetCollector``.
    ``start()`` and ``close()`` run on the event loop too.
    """

    name: ClassVar[str]

    def start(self) -> None:
        """Start background work (probes, watchers). Nothing by default."""

    def close(self) -> None:
        """Stop background work and release connections. Nothing by default."""

    def for_probe(self, query: str, allow: AllowList) -> Source:
        """A fresh one-target collector for ``/probe?target=query`` (multi-target pattern),
        usually a ``TargetCollector`` reading just that target.

        Configured targets may always be probed; any other address only when ``allow`` (the
        core ``probe.allow`` setting) lists its host.
        """
        raise ProbeTargetError(f"the {self.name} collector does not support /probe")

    def router(self) -> APIRouter | None:
        """Routes this source receives data on; the application mounts them as they are."""
        return None

    def fast_routes(self) -> dict[str, ASGIApp]:
        """High-volume endpoints (path -> raw ASGI application), served ahead of the framework."""
        return {}

    def openapi_paths(self) -> dict[str, Any]:
        """OpenAPI path items for ``fast_routes`` (the framework cannot see them), so ``/docs``
        lists every endpoint. None by default."""
        return {}

    def bearer_paths(self) -> Iterable[str]:
        """Paths that check a bearer token of their own (a receiver with its token set).

        A sender has one ``Authorization`` header: the web config's basic auth leaves these
        paths to their token; every other path needs basic auth when it is configured.
        """
        return ()


Factory = Callable[[Any, "Runtime"], Source]


@dataclass(frozen=True)
class Section:
    """One settings section and the collector it configures.

    ``name`` is the YAML key, the env var part (``CACHEWATCH_<NAME>__...``), the
    ``--enable-collector`` value and the ``collector`` label. ``factory`` is a
    ``"module:function"`` path, imported only when the section is enabled, so a source's heavy
    dependencies (an SDK, an HTTP client) cost nothing to those who do not use it.
    """

    name: str
    settings: type[BaseModel]
    factory: str
    # The layer its targets are shown under on the status page; the section's name by default.
    layer: str = ""
    # An address ``/probe?target=`` takes, for help texts (``proto://host:port``); a section
    # with one serves ``/probe``, and the first registered such is ``/probe``'s default module.
    probe_example: str = ""

    @property
    def shown_layer(self) -> str:
        """The layer of this section's targets on the status page."""
        return self.layer or self.name

    def build(self, section_settings: BaseModel, runtime: Runtime) -> Source:
        """Import the factory and build this section's collector."""
        module, _, function = self.factory.partition(":")
        built: Factory = getattr(importlib.import_module(module), function)
        return built(section_settings, runtime)


@dataclass(frozen=True)
class Layer:
    """One value of the ``layer`` label a source feeds the core families with.

    ``generic_alerts``: the core's CacheHitRateLow (below 85 %) and CacheLatencyP99High (above
    50 ms) cover it, with their promtool cases; a layer with a rule of its own (build cache,
    pull-through cache) says False. ``receiver`` and ``relay_path`` are the team its alerts
    go to in the example Alertmanager routing (layers sharing a receiver share a route).
    """

    name: str
    title: str  # its section on the status page
    generic_alerts: bool = True
    receiver: str = "service-owners"
    relay_path: str = "services"
    # A gauge family with ``cache`` and ``rule`` labels (as collected): rules at 1 are listed
    # under the caches of this layer on the status page, as what a doctor found.
    findings: str = ""
    # The field of the source's thresholds model its hit rate is held to on the status page
    # (and alerted at); the core's hit rate when empty.
    hit_rate_goal: str = ""
    # Whether its caches' lookups can have a latency: no P99 on its tile or table when not.
    latency: bool = True
    # The sections whose collectors feed it (the one named like the layer when empty): its
    # status-page tile shows while one of them is enabled, or while it has caches.
    fed_by: tuple[str, ...] = ()

    @property
    def feeders(self) -> tuple[str, ...]:
        """The sections that feed it (``fed_by``, else the section of its own name)."""
        return self.fed_by or (self.name,)


@dataclass(frozen=True)
class Activity:
    """A counter family the status page shows as activity: a count per item, no hit rate."""

    family: str  # as collected (``MetricSpec.family_name``)
    kind: str  # what is counted ("pulls")
    group: str  # the label grouping the items
    item: str  # the label naming an item
    title: str  # its section on the status page


@dataclass(frozen=True)
class Doctor:
    """A source's ``cachewatch doctor``: the arguments it takes and the command that reads them.

    ``cachewatch doctor ARG ...`` goes to the doctor whose ``schemes`` name ARG's URL scheme
    (``proto`` for ``proto://host``), else to the one with no schemes (files). ``command`` is a
    ``"module:function"`` Typer command, imported only when chosen; ``usage`` is its line in
    ``cachewatch --help`` (what ARG is).
    """

    command: str
    usage: str
    schemes: tuple[str, ...] = ()

    def takes(self, argument: str) -> bool:
        """Whether ``argument`` (the first one that is not an option) is for this doctor."""
        scheme, sep, _ = argument.partition("://")
        return bool(sep) and scheme.lower() in self.schemes


@dataclass(frozen=True)
class SourcePackage:
    """Everything the core needs from a source, declared once in ``sources/<name>/__init__.py``.

    The core derives every list from these declarations and names no source itself: the
    settings and ``serve`` flags (``sections``), the collectors (``Section.factory``), the
    ``/probe`` modules (``Section.probe_example``), the metric reference (``contract``), the
    ``layer`` values with their status-page sections, generic alerts and Alertmanager routes
    (``layers``), the status page's activity tables (``activity``) and what it suggests when
    nothing is measured (``first_step``), the CLI commands (``commands``) and ``doctor``, and
    the bundle part (``bundle``: dashboard, rules, promtool cases; see
    ``bundle.part.BundlePart``) and its thresholds model (``thresholds``: ``bundle`` flags).
    """

    name: str
    sections: tuple[Section, ...]
    # What it measures, as ``cachewatch --help`` lists the sources ("build cache").
    title: str = ""
    layers: tuple[Layer, ...] = ()
    activity: tuple[Activity, ...] = ()
    # An HTML fragment for the empty status page: how to get this source's first numbers.
    first_step: str = ""
    # Its page under docs/ (``sources/<page>.md``), which the empty status page links.
    docs: str = ""
    # "module:function" adding the source's own commands to the CLI (lazily imported).
    commands: str | None = None
    # Its ``cachewatch doctor``, if it has one (the core dispatches by argument).
    doctor: Doctor | None = None
    # Module holding the source's bundle part (``PART``): rules, tests, dashboard.
    bundle: str | None = None
    # "module:Class" of its own alert thresholds: a frozen dataclass of
    # ``bundle.thresholds.threshold()`` fields, whose flags become options of ``cachewatch
    # bundle`` and which the part's functions read with ``t.of(Class)``. A module apart from
    # the part, so building the CLI loads no dashboard or rule code.
    thresholds: str | None = None
    # Module declaring the source's metric families (``contract.declare``) and its ``LAYER``.
    contract: str | None = None
    # Loggers of its clients that log every request at info: kept to warnings (unless the log
    # level is debug), so a scrape does not log a line per request.
    chatty_loggers: tuple[str, ...] = ()
    # "module:function" rendering the source's own part of the status page from a
    # ``status.context.PageContext`` (HTML), shown after its layers' tables.
    status: str | None = None

    def thresholds_model(self) -> type | None:
        """The source's thresholds model, imported on first use (``thresholds``)."""
        if not self.thresholds:
            return None
        module, _, name = self.thresholds.partition(":")
        model: type = getattr(importlib.import_module(module), name)
        return model

    def add_commands(self, cli: typer.Typer) -> None:
        """Let the source register its own CLI commands."""
        if self.commands:
            module, _, function = self.commands.partition(":")
            getattr(importlib.import_module(module), function)(cli)
