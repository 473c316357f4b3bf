"""The bundle: dashboards, rules with their unit tests, and Alertmanager routing, generated
from the metric contract by the core and one part per source (``bundle.part``).

``cachewatch bundle`` writes them; the committed copies under ``alerts/`` must equal a fresh
generation (a test regenerates and compares), the monitoring-mixin convention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assembly import files, write

__all__ = ["files", "write"]


def __getattr__(name: str) -> Any:
    """``files`` and ``write`` from ``assembly``, loaded on first use: the sources' parts import
    this package's building blocks, so loading the parts list while it initialises would be
    circular for whoever imports a part first."""
    if name in __all__:
        from . import assembly

        return getattr(assembly, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
