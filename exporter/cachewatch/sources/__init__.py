"""The one registration list: every source cachewatch knows, in the order they are documented.

Adding a source is a new package under ``sources/`` declaring a ``SOURCE`` and one line in
``packages()``; the core (settings, CLI, app wiring, bundle) reads everything else from that
declaration. Imported on first use, so ``cachewatch.instrument`` inside an application never loads
the exporter's sources.
"""

from __future__ import annotations

from functools import cache

from ..source import Section, SourcePackage


@cache
def packages() -> tuple[SourcePackage, ...]:
    """Every source package, in registration order."""
    from . import app, docker, redis, registry

    return (redis.SOURCE, docker.SOURCE, registry.SOURCE, app.SOURCE)


def sections() -> dict[str, Section]:
    """Every settings section (the collectors' names), in registration order."""
    return {section.name: section for source in packages() for section in source.sections}
