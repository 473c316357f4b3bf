"""Collectors, one module per source; each registers itself here under its settings name.

Like node_exporter: the rest of the program never lists collectors by hand. A source module
calls ``@register("name")`` on a factory; ``Settings.<name>.enabled`` turns it on or off.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from ..health import Health
from .base import Source

Factory = Callable[[Settings, Health], Source]
FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Register a collector factory; ``name`` is also its settings section and label value."""

    def decorate(factory: Factory) -> Factory:
        if name in FACTORIES:
            raise ValueError(f"collector {name!r} is registered twice")
        FACTORIES[name] = factory
        return factory

    return decorate


def enabled_names(settings: Settings) -> list[str]:
    """Registered collectors whose settings section says ``enabled``."""
    return [name for name in FACTORIES if getattr(settings, name).enabled]


def build(settings: Settings, health: Health) -> list[Source]:
    """Instantiate every enabled collector."""
    return [FACTORIES[name](settings, health) for name in enabled_names(settings)]


# Registration: one import per source module.
from . import (  # noqa: E402, F401
    app_caches,
    docker_builds,
    docker_engine,
    redis,
    registry_events,
    registry_proxy,
)
