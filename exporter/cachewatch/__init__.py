"""cachewatch: one metric contract for cache hit rate and latency at every layer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cachewatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
