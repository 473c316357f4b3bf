"""Names of the series the core recording rules record (``level:metric:operation``).

Alerts, dashboards and the sources' parts read these rather than the raw families, so one
rename here moves every reader with it.
"""

from __future__ import annotations

BY_RESULT = "layer_cache_result:cachewatch_cache_lookups:rate5m"
TOTAL = "layer_cache:cachewatch_cache_lookups:rate5m"
HIT_RATIO = "layer_cache:cachewatch_cache_hit_ratio:rate5m"
P99 = "layer_cache:cachewatch_cache_latency_seconds:p99_5m"
OBSERVATIONS = "layer_cache:cachewatch_cache_latency_observations:rate5m"
