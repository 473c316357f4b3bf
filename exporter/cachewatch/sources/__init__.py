"""The one registration list: every source cachewatch knows, in the order they are documented.

Adding a source is a new package under ``sources/`` declaring a ``SOURCE`` and one line in
``packages()``; the core (settings, CLI, app wiring, bundle) reads everything else from that
declaration. Imported on first use, so ``cachewatch.instrument`` inside an application never loads
the exporter's sources.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from ..source import Section, Source, SourcePackage

if TYPE_CHECKING:
    from ..config import CoreSettings
    from ..runtime import Runtime


@cache
def packages() -> tuple[SourcePackage, ...]:
    """Every source package, in registration order."""
    from . import app, docker, memcached, redis, registry

    return (redis.SOURCE, docker.SOURCE, registry.SOURCE, app.SOURCE, memcached.SOURCE)


def sections() -> dict[str, Section]:
    """Every settings section (the collectors' names), in registration order."""
    return {section.name: section for source in packages() for section in source.sections}


def build(settings: CoreSettings, runtime: Runtime) -> list[Source]:
    """Build the collector of every enabled section."""
    built = []
    for name, section in sections().items():
        section_settings = getattr(settings, name)
        if section_settings.enabled:
            built.append(section.build(section_settings, runtime))
    return built
