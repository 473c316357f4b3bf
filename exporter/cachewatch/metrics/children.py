"""Histogram and summary children kept as their values and written to text in one step,
samples made only when something other than the OpenMetrics encoder reads the family.

A histogram child is 20 to 30 samples (a source's per-command latency with ten commands: 240
lines on every scrape), a summary child a few quantiles, ``_count`` and ``_sum``. Made into
sample tuples, merged, unpacked and formatted one by one, they were the largest part of a
scrape's CPU. ``HistogramFamily`` and ``SummaryFamily`` keep each child added through
``Families.add_cumulative`` or ``Families.add_summary`` as one ``Child`` (the values read from the
source at this scrape, and the series' labels rendered when they were first seen) and the
encoder writes its lines from those (``Child.text``). Any other reader of ``samples`` (the status
page, the text-format encoder, a test) gets the very samples ``HistogramMetricFamily.add_metric``
(or ``Families.add_summary``, before children) would have made, in the order they were added.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import HistogramMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from . import series

_INF = float("inf")
# A sample's fields after name, labels and value (timestamp, exemplar...): all unset.
UNSET = (None,) * (len(Sample._fields) - 3)


def number(value: float) -> str:
    """A sample value as OpenMetrics writes it (``floatToGoString``; between -1e6 and 1e6 Go
    and Python write floats alike, so ``repr`` there, at a fraction of the cost)."""
    if value.__class__ is float and -1e6 < value < 1e6:
        return repr(value)
    return floatToGoString(value)


class Child:
    """One histogram or summary child: the value of each point (a histogram's cumulative count
    per ``le``, ``+Inf`` last; a summary's quantiles), its count and its sum, with the series'
    rendered labels and line template (``series.child``)."""

    __slots__ = ("count", "labels", "points", "sample", "sum_value", "totals")

    def __init__(self, sample: str, labels: series.Child, points: Sequence[float],
                 count: float, sum_value: float, totals: bool) -> None:
        """``sample``: the points' sample name (``<name>_bucket``, a summary's ``<name>``).
        ``totals``: whether ``_count`` and ``_sum`` follow the points (not when a histogram
        edge is negative, as ``HistogramMetricFamily`` decides)."""
        if len(points) != len(labels[0]):
            raise ValueError(f"{len(labels[0])} points, {len(points)} values")
        self.sample = sample
        self.labels = labels
        self.points = points
        self.count = count
        self.sum_value = sum_value
        self.totals = totals

    def samples(self) -> list[Sample]:
        """The samples this child stands for, as the family's ``add_metric`` makes them."""
        new = tuple.__new__
        points, count, total, _ = self.labels
        made = [new(Sample, (self.sample, labels, value, *UNSET))
                for labels, value in zip(points, self.points, strict=True)]
        if self.totals:
            made.append(new(Sample, (count.name, count, self.count, *UNSET)))
            made.append(new(Sample, (total.name, total, self.sum_value, *UNSET)))
        return made

    def text(self) -> str:
        """The child's OpenMetrics lines, byte for byte as the encoder writes its samples: the
        values formatted by ``number``, in one ``%`` of the child's template where they can
        be (finite floats, as a histogram's counts are)."""
        if not self.totals:
            return "".join([labels.text + number(value) + "\n"
                            for labels, value in zip(self.labels[0], self.points, strict=True)])
        values = [*map(float, self.points), float(self.count), float(self.sum_value)]
        # A NaN makes the sum NaN, an infinity the max or min: those go through ``number``.
        if max(values) < 1e6 and min(values) > -_INF and sum(values) == sum(values):
            return self.labels[3] % tuple(map(repr, values))
        return self.labels[3] % tuple(map(number, values))


class _Children:
    """A family whose children are kept whole (``children``) until ``samples`` is read;
    samples added otherwise come first, as they were added first."""

    _samples: list[Sample]
    children: list[Child]

    @property
    def samples(self) -> list[Sample]:
        """Every sample, the children's made now (once) and kept."""
        if self.children:
            for child in self.children:
                self._samples.extend(child.samples())
            self.children = []
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value
        self.children = []

    def add_child(self, child: Child) -> None:
        """Keep ``child`` whole: after every sample added so far."""
        self.children.append(child)

    def merge(self, other: Metric) -> None:
        """``other``'s samples and children after this family's own."""
        if other.__class__ is self.__class__ and not other._samples:  # type: ignore[attr-defined]
            self.children.extend(other.children)  # type: ignore[attr-defined]
        else:
            self.samples.extend(other.samples)

    def copy(self) -> _Children:
        """A family of the same name with the same contents, neither list shared."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._samples = list(self._samples)
        copy.children = list(self.children)
        return copy


class HistogramFamily(_Children, HistogramMetricFamily):  # type: ignore[misc]
    """A histogram family with whole children (``Families.add_cumulative``)."""


class SummaryFamily(_Children, SummaryMetricFamily):  # type: ignore[misc]
    """A summary family with whole children (``Families.add_summary``)."""


# The families the encoder writes children of (``Child.text``).
WITH_CHILDREN = (HistogramFamily, SummaryFamily)
