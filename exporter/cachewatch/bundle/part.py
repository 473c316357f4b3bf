"""The interface between the bundle's core and a source: what one source adds to the bundle.

A source package defines ``PART = BundlePart(...)`` in its ``bundle`` module and names that
module in its ``SourcePackage``; the core reads sources only through the parts list
(``bundle.parts.PARTS``, taken from the registration list). What a part does not declare, the
core derives from the source's ``SourcePackage.layers``: a layer with ``generic_alerts`` gets
CacheHitRateLow and CacheLatencyP99High, their promtool cases, a place in the overview
dashboard and an Alertmanager route, with no part at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .goals import Goal
from .panels import DashboardSpec
from .thresholds import Thresholds

# Rules or promtool test cases, drawn at the user's thresholds.
Generated = Callable[[Thresholds], list[dict[str, Any]]]


def nothing(t: Thresholds) -> list[dict[str, Any]]:
    """What a part contributes where it has nothing to add."""
    return []


def no_goals(t: Thresholds) -> tuple[Goal, ...]:
    """A part that feeds no layer of the shared lookups."""
    return ()


@dataclass(frozen=True)
class Rejections:
    """A receiver's refusal counter: one ``or`` branch of CachewatchWebhooksRejected, whose
    ``endpoint`` label tells the operator which receiver refuses data.

    ``test_series`` are (labels, promtool values) of ``metric`` in the health test case, whose
    refusals start at minute 6; ``test_firing`` are the (reason, value) alerts expected at
    minute 20 (none at minute 12, before ``for`` has passed, and none at minute 38, once
    refusals that stopped at minute 25 have left the window).
    """

    metric: str
    endpoint: str
    # Place of the branch in the ``or`` chain. The branches' endpoints differ, so the order
    # changes no alert; it keeps the committed rules, older than the parts list, byte-identical.
    position: int
    # A reason that is not a fault (a re-submitted build is a duplicate by design): no alert.
    benign_reason: str = ""
    test_series: tuple[tuple[str, str], ...] = ()
    test_firing: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BundlePart:
    """One source's dashboard, rules and promtool tests, and what it adds to shared artefacts.

    The core places each contribution where Prometheus and the committed files need it:
    ``lookup_feeds`` right after the core's own lookups-by-result rule (rules in a group run in
    order, so the shared hit ratio sees them in the same evaluation), ``recording_rules`` after
    the core's, ``alert_rules`` between the core's cache alerts and its health alerts,
    ``alert_tests`` in the same order as the alerts and ``recording_tests`` last.
    """

    dashboard: DashboardSpec
    lookup_feeds: Generated = nothing  # more inputs to ``series.BY_RESULT``
    recording_rules: Generated = nothing
    alert_rules: Generated = nothing
    alert_tests: Generated = nothing
    recording_tests: Generated = nothing
    rejections: Rejections | None = None
    # The goal of each layer it feeds, as its alerts judge it (``goals.Goal``): the overview
    # counts, ranks and colours the layer's caches by it.
    goals: Callable[[Thresholds], tuple[Goal, ...]] = no_goals
    # Its alerts about one cache's health, inhibited (like the core's cache alerts) while
    # cachewatch cannot read that cache.
    cache_alerts: tuple[str, ...] = ()
    # What its collectors read, in the plural ("cache servers"): the overview dashboard names
    # them where it counts the targets cachewatch cannot read.
    targets: str = ""
