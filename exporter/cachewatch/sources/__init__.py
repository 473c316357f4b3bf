"""The one registration list: every source cachewatch knows, in the order they are documented.

Adding a source is a new package under ``sources/`` declaring a ``SOURCE`` and one line in
``REGISTERED``; the core (settings, CLI, app wiring, bundle) reads everything else from that
declaration. Imported on first use, so ``cachewatch.instrument`` inside an application never loads
the exporter's sources.
"""

from __future__ import annotations

import importlib
from functools import cache

from ..metrics import contract
from ..metrics.contract import MetricSpec
from ..source import Activity, Layer, Section, SourcePackage

# The registration list: each source's package name, one a line, in the order they are documented.
REGISTERED = (
    "redis",
    "docker",
    "registry",
    "app",
    "ci",
    "memcached",
)


@cache
def packages() -> tuple[SourcePackage, ...]:
    """Every source package, in registration order."""
    return tuple(importlib.import_module(f"{__name__}.{name}").SOURCE for name in REGISTERED)


def sections() -> dict[str, Section]:
    """Every settings section (the collectors' names), in registration order."""
    return {section.name: section for source in packages() for section in source.sections}


def specs() -> list[MetricSpec]:
    """Every metric family: the core's, then each source's (its ``contract`` module), in
    registration order; the metric reference lists them so."""
    found = {spec.name: spec for spec in vars(contract).values() if isinstance(spec, MetricSpec)}
    for source in packages():
        if source.contract:
            module = importlib.import_module(source.contract)
            found.update((spec.name, spec) for spec in vars(module).values()
                         if isinstance(spec, MetricSpec) and spec.name not in found)
    return list(found.values())


def layers() -> list[Layer]:
    """Every ``layer`` label value the sources feed, in registration order."""
    return [layer for source in packages() for layer in source.layers]


@cache
def activity() -> dict[str, Activity]:
    """The status page's activity families, by family name."""
    return {item.family: item for source in packages() for item in source.activity}


def probe_examples() -> dict[str, str]:
    """Section name -> an address its ``/probe`` takes, for the sections that serve ``/probe``;
    the first is the default module."""
    return {name: section.probe_example for name, section in sections().items()
            if section.probe_example}
