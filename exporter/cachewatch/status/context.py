"""What a source's status-page section is given (``SourcePackage.status``): the numbers of now,
the history, the goals and the source's running collectors, so a section can show what only
its source keeps in memory (the last build of each image, expired instances)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from .goals import Goals
from .history import Snapshot, View

if TYPE_CHECKING:
    from ..source import Source


@dataclass
class PageContext:
    """One rendering of the page."""

    view: View
    snapshot: Snapshot
    now: float
    goals: Goals = field(default_factory=Goals)
    metrics: list[Metric] = field(default_factory=list)
    # The running collectors by section name (``Source.name``).
    sources: Mapping[str, Source] = field(default_factory=dict)

    def samples(self, family: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every sample of ``family`` (as collected) now."""
        return [(dict(sample.labels), sample.value) for metric in self.metrics
                if metric.name == family for sample in metric.samples
                if sample.name in (family, family + "_total", family + "_info")]


def percent(ratio: float | None) -> str:
    """0.912 -> ``91.2%``; ``no lookups`` when there is no ratio (never NaN)."""
    return "no lookups" if ratio is None else f"{ratio * 100:.1f}%"


def goal_percent(ratio: float) -> str:
    """0.85 -> ``85%``, 0.875 -> ``87.5%``: a goal as the page writes it everywhere (tiles,
    below goal, the note), in the style of ``percent`` and never rounded past what was set."""
    return f"{ratio * 100:.1f}".removesuffix(".0") + "%"
