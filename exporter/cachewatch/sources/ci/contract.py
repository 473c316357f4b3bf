"""The CI caches' part of the metric contract: restores by result, bytes restored, saves.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike. Each restore
is also a lookup under ``layer="ci"`` (a partial restore is a miss there: the job still
rebuilds what changed), so the core's hit-rate rule covers CI caches.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import Kind, declare

# The ``layer`` label value this source's lookups carry.
LAYER = "ci"

CI = "ci"
CI_CACHE_RESTORES = declare(
    "ci_cache_restores_total", Kind.COUNTER,
    "CI cache restores by result: hit (the primary key), partial (a restore or fallback key),"
    " miss; cache is the key's stable prefix.",
    ("ci", "cache", "result"), CI)
CI_CACHE_RESTORED_BYTES = declare(
    "ci_cache_restored_bytes_total", Kind.COUNTER,
    "Bytes of CI caches restored, as the CI printed their size.",
    ("ci", "cache"), CI)
CI_CACHE_SAVES = declare(
    "ci_cache_saves_total", Kind.COUNTER,
    "CI caches saved (uploaded); a save with nothing new to upload is not counted.",
    ("ci", "cache"), CI)
CI_INGEST_REJECTED = declare(
    "ci_ingest_rejected_total", Kind.COUNTER,
    "CI job reports refused, by reason (auth, too_large, malformed, duplicate).",
    ("reason",), CI)
