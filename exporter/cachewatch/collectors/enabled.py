"""The collectors of a configuration: each enabled section's, built by its source's factory.

Kept out of the registration list (``cachewatch.sources``), which the settings read to assemble
their model: building needs those settings, and the list must not need them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sources import sections

if TYPE_CHECKING:
    from ..config import CoreSettings
    from ..runtime import Runtime
    from ..source import Source


def build(settings: CoreSettings, runtime: Runtime) -> list[Source]:
    """Build the collector of every enabled section."""
    built = []
    for name, section in sections().items():
        section_settings = getattr(settings, name)
        if section_settings.enabled:
            built.append(section.build(section_settings, runtime))
    return built
