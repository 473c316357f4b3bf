"""Public import path of the in-process instrumentation: ``from cachewatch.instrument import ...``.

The code lives with its source (``cachewatch.sources.app.instrument``); applications keep importing
it from here, so the layout of the exporter can change without breaking them.
"""

from .sources.app.instrument import (
    Caches,
    CacheStats,
    Pusher,
    cached,
    caches,
    default_instance,
    instrument_cachetools,
    instrument_lru,
)

__all__ = ["CacheStats", "Caches", "Pusher", "cached", "caches", "default_instance",
           "instrument_cachetools", "instrument_lru"]
