"""The sources' bundle parts, taken from the one registration list (``cachewatch.sources``), in
the order their rules, tests and dashboards appear."""

from __future__ import annotations

import importlib

from ..sources import packages
from .part import BundlePart

PARTS: tuple[BundlePart, ...] = tuple(
    importlib.import_module(source.bundle).PART for source in packages() if source.bundle)
