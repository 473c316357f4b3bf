"""The metric contract: every metric cachewatch exports is named here and nowhere else.

Collectors, dashboards and alert rules all import these specs, so renaming a metric is one edit
here and every consumer follows (or a test breaks) instead of a panel silently going blank.

Conventions (DESIGN.md): prefix ``cachewatch_``, base units (seconds, bytes), counters end in
``_total``, ratios are left to PromQL. Every layer feeds the same core families, labelled by
``layer`` and ``cache``; each source adds detail families of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from . import series
from .children import UNSET as _UNSET
from .children import WITH_CHILDREN, Child, HistogramFamily, SummaryFamily
from .series import SERIES

# What a source's contract module re-exports (``from ...metrics.contract import *``).
__all__ = [
    "BUILD_INFO",
    "CACHE_BYTES",
    "CACHE_ENTRIES",
    "CACHE_EVICTIONS",
    "CACHE_LATENCY",
    "CACHE_LOOKUPS",
    "COLLECTOR_DURATION",
    "COLLECTOR_ERRORS",
    "COLLECTOR_UP",
    "CORE",
    "HIT_RATE_TARGET",
    "HTTP_REFUSED",
    "LABEL_OVERFLOW",
    "LATENCY_BUCKETS",
    "LATENCY_P99_TARGET_SECONDS",
    "PREFIX",
    "PROCESS_FAMILIES",
    "SELF",
    "SPECS",
    "STATE",
    "STATE_ERRORS",
    "STATE_INFO",
    "STATE_REFUSED",
    "STATE_UP",
    "Families",
    "Kind",
    "MetricSpec",
    "declare",
    "family",
    "markdown_table",
]

PREFIX = "cachewatch_"
# Legacy Prometheus names: every scraper and query language version accepts them unquoted.
_LEGACY_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Kind(StrEnum):
    """Prometheus metric type of a family."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"


# Lookup latency buckets. 0.05 s is an edge on purpose: the P99 alert threshold must be a bucket
# boundary or histogram_quantile() interpolates across it and the alert fires at the wrong value.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

# Default targets that the bundle's alerts and dashboard lines are drawn at.
HIT_RATE_TARGET = 0.85
LATENCY_P99_TARGET_SECONDS = 0.05

assert LATENCY_P99_TARGET_SECONDS in LATENCY_BUCKETS, "the P99 target must be a bucket edge"


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its full exposition name, type, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    group: str
    # The name prometheus_client wants (it appends ``_total`` / ``_info`` itself), which is
    # also the name ``Families`` collects the family under: set once, read for every sample.
    family_name: str = field(init=False, repr=False, compare=False)
    # An info family's samples are always 1, whatever value is added.
    is_info: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _LEGACY_NAME.match(self.name) or not all(map(_LEGACY_NAME.match, self.labels)):
            raise ValueError(f"{self.name}: names and labels use [a-zA-Z_][a-zA-Z0-9_]* only")
        if not self.name.startswith(PREFIX):
            raise ValueError(f"{self.name}: every metric starts with {PREFIX}")
        if (self.kind is Kind.COUNTER) != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        if self.kind is Kind.INFO and not self.name.endswith("_info"):
            raise ValueError(f"{self.name}: info metrics end in _info")
        suffix = {Kind.COUNTER: "_total", Kind.INFO: "_info"}.get(self.kind, "")
        object.__setattr__(self, "family_name", self.name.removesuffix(suffix))
        object.__setattr__(self, "is_info", self.kind is Kind.INFO)


SPECS: dict[str, MetricSpec] = {}


def declare(name: str, kind: Kind, help_: str, labels: Sequence[str], group: str) -> MetricSpec:
    """A family named ``cachewatch_<name>``, registered in ``SPECS``: the core declares its own
    here, and each source its own in its package (``sources/<name>/contract.py``)."""
    spec = MetricSpec(PREFIX + name, kind, help_, tuple(labels), group)
    if spec.name in SPECS:
        raise ValueError(f"{spec.name} is defined twice")
    SPECS[spec.name] = spec
    return spec


CORE = "core"
SELF = "self"

# --- core families: every layer ---------------------------------------------------------------
CACHE_LOOKUPS = declare(
    "cache_lookups_total", Kind.COUNTER,
    "Cache lookups by result (hit or miss); hit ratio = hits / (hits + misses), in PromQL.",
    ("layer", "cache", "result"), CORE)
CACHE_LATENCY = declare(
    "cache_latency_seconds", Kind.HISTOGRAM,
    "Observed cache operation latency, client side (network included).",
    ("layer", "cache", "op"), CORE)
CACHE_EVICTIONS = declare(
    "cache_evictions_total", Kind.COUNTER,
    "Entries evicted from the cache to make room.",
    ("layer", "cache"), CORE)
CACHE_ENTRIES = declare(
    "cache_entries", Kind.GAUGE,
    "Entries held by the cache now.",
    ("layer", "cache"), CORE)
CACHE_BYTES = declare(
    "cache_bytes", Kind.GAUGE,
    "Bytes used by the cache now.",
    ("layer", "cache"), CORE)

# --- self-monitoring (node_exporter style) ----------------------------------------------------
COLLECTOR_UP = declare(
    "collector_up", Kind.GAUGE,
    "1 if the collector read its target successfully in this scrape, 0 if not.",
    ("collector", "target"), SELF)
COLLECTOR_DURATION = declare(
    "collector_duration_seconds", Kind.GAUGE,
    "How long the collector took to read its target in this scrape.",
    ("collector", "target"), SELF)
COLLECTOR_ERRORS = declare(
    "collector_errors_total", Kind.COUNTER,
    "Failed reads of a target, by reason (timeout, connection, auth, ...).",
    ("collector", "target", "reason"), SELF)
BUILD_INFO = declare(
    "build_info", Kind.INFO,
    "cachewatch version and Python runtime; always 1.",
    ("version", "python_version"), SELF)


# --- the exporter's own HTTP server -----------------------------------------------------------
HTTP_REFUSED = declare(
    "http_refused_total", Kind.COUNTER,
    "Requests and connections the exporter's HTTP server refused, by reason (unauthorized,"
    " rate_limited, auth_busy, connection_cap, header_timeout, body_timeout, header_too_large,"
    " bad_request, body_budget, write_forbidden).",
    ("reason",), SELF)


LABEL_OVERFLOW = declare(
    "label_overflow_total", Kind.COUNTER,
    "Label values folded into `other` because a cap was full, by capped family (source.what);"
    " exported once a cap has folded one.",
    ("family",), SELF)


# --- durable state (self-monitoring) ------------------------------------------------------------
STATE = "state"
STATE_INFO = declare(
    "state_info", Kind.INFO,
    "Where this process keeps its state (backend sqlite, redis or memory) and its replica id.",
    ("backend", "replica"), STATE)
STATE_UP = declare(
    "state_up", Kind.GAUGE,
    "1 if the state store answered its last read, write or check; 0 while receivers answer 503.",
    (), STATE)
STATE_ERRORS = declare(
    "state_errors_total", Kind.COUNTER,
    "Failed operations on the state store, by op (read, write, ping).",
    ("op",), STATE)
STATE_REFUSED = declare(
    "state_refused_total", Kind.COUNTER,
    "Requests answered 503 because their state could not be stored, by reason (timeout, error,"
    " overload, loading).",
    ("reason",), STATE)


# --- the process (the standard process_* names every exporter has) ----------------------------
# Outside the cachewatch_ prefix on purpose: dashboards and alerts for any exporter read these.
# Names, types and help texts are those of prometheus_client's ProcessCollector, in its order.
PROCESS_FAMILIES: tuple[tuple[str, Kind, str], ...] = (
    ("process_virtual_memory_bytes", Kind.GAUGE, "Virtual memory size in bytes."),
    ("process_resident_memory_bytes", Kind.GAUGE, "Resident memory size in bytes."),
    ("process_start_time_seconds", Kind.GAUGE,
     "Start time of the process since unix epoch in seconds."),
    ("process_cpu_seconds_total", Kind.COUNTER,
     "Total user and system CPU time spent in seconds."),
    ("process_open_fds", Kind.GAUGE, "Number of open file descriptors."),
    ("process_max_fds", Kind.GAUGE, "Maximum number of open file descriptors."),
)


def family(spec: MetricSpec) -> Metric:
    """An empty prometheus_client family for ``spec``, labels declared, ready for samples.

    Made once per spec and copied after (``_empty``): building one validates its name and
    labels, work a scrape would otherwise repeat for every family it yields.
    """
    template = _TEMPLATES.get(spec.name)
    if template is None:
        template = _TEMPLATES[spec.name] = _family(spec)
    return _copy(template, [])


_TEMPLATES: dict[str, Metric] = {}


def _copy(metric: Metric, samples: list[Sample]) -> Metric:
    """``metric`` with other samples, without re-validating what its constructor checked."""
    copy = object.__new__(type(metric))
    copy.__dict__.update(metric.__dict__)
    copy.samples = samples
    return copy


def _family(spec: MetricSpec) -> Metric:
    if spec.kind is Kind.COUNTER:
        return CounterMetricFamily(spec.family_name, spec.help, labels=spec.labels)
    if spec.kind is Kind.GAUGE:
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind is Kind.HISTOGRAM:
        return HistogramFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind is Kind.SUMMARY:
        return SummaryFamily(spec.name, spec.help, labels=spec.labels)
    return InfoMetricFamily(spec.family_name, spec.help, labels=spec.labels)


class Families:
    """Collects samples for several targets and yields one family per name.

    A text exposition may name a family only once, so samples from every target (and every
    source) of the same family must be merged before encoding; this is that merge point for
    one collector, and for the whole exposition.

    Ownership: a family this object made (``add``, ``add_cumulative``, ``add_summary``) is its
    own to change. A family merged in (``extend``) is borrowed: another collector, a cached
    list or a read shared by two scrapes may still hold it, so it is never changed here, only
    copied (once) when a second family of its name arrives or a sample is added to it. Most
    names come from one collector, so a scrape merges its collectors without copying any.
    """

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}
        self._borrowed: set[str] = set()  # names whose family another holder made

    def _own(self, name: str) -> Metric:
        """The family of ``name``, copied first if it is borrowed: from now on this object's."""
        fam = self._families[name]
        if name in self._borrowed:
            self._borrowed.discard(name)
            fam = self._families[name] = fam.copy() if isinstance(fam, WITH_CHILDREN) \
                else _copy(fam, list(fam.samples))
        return fam

    def _get(self, spec: MetricSpec, labels: Mapping[str, str]) -> tuple[Metric, list[str]]:
        if tuple(labels) != spec.labels:
            raise ValueError(f"{spec.name} takes labels {spec.labels}, got {tuple(labels)}")
        key = spec.family_name
        fam = self._families.get(key)
        if fam is None:
            fam = self._families[key] = family(spec)
        elif self._borrowed and key in self._borrowed:
            fam = self._own(key)
        return fam, [str(v) for v in labels.values()]

    def add(self, spec: MetricSpec, labels: Mapping[str, str], value: float) -> None:
        """Add one counter or gauge sample (or an info sample with value 1).

        The sample is made here, not by the family's ``add_metric`` (which turns the label
        dict into a list and back): this runs for every sample of every scrape, so the
        series' labels are looked up in ``series``' table directly.
        """
        name = spec.name
        known = SERIES.get((name, tuple(labels.items())))
        if known is None:  # a series seen before had its label names checked then
            if tuple(labels) != spec.labels:
                raise ValueError(f"{name} takes labels {spec.labels}, got {tuple(labels)}")
            known = series.series(name, tuple(labels.items()))
        fam = self._families.get(spec.family_name)
        if fam is None or (self._borrowed and spec.family_name in self._borrowed):
            fam = self._for_add(spec)
        # The sample name is the spec's: counters end in _total and info in _info already.
        # tuple.__new__ skips the namedtuple's Python-level constructor (same object); the
        # labels are the series' shared ``SeriesLabels``, rendered once.
        fam.samples.append(tuple.__new__(Sample, (
            name, known, 1 if spec.is_info else value, *_UNSET)))

    def _for_add(self, spec: MetricSpec) -> Metric:
        """The family ``add`` appends to: made now, or owned first if borrowed."""
        key = spec.family_name
        fam = self._families.get(key)
        if fam is None:
            if spec.kind in (Kind.HISTOGRAM, Kind.SUMMARY):
                raise ValueError(f"{spec.name} is a {spec.kind}: use add_{spec.kind}")
            fam = self._families[key] = family(spec)
        elif key in self._borrowed:
            fam = self._own(key)
        return fam

    def add_histogram(
        self,
        spec: MetricSpec,
        labels: Mapping[str, str],
        buckets: Iterable[tuple[str, float]],
        sum_value: float,
    ) -> None:
        """Add one histogram child from cumulative ``(le, count)`` pairs, ``+Inf`` last.

        What ``HistogramMetricFamily.add_metric`` would make (buckets, then ``_count`` and
        ``_sum`` unless an edge is negative), kept as one child (``add_cumulative``).
        """
        pairs = list(buckets)
        self.add_cumulative(spec, labels, tuple(le for le, _ in pairs),
                            [count for _, count in pairs], sum_value)

    def add_cumulative(self, spec: MetricSpec, labels: Mapping[str, str], edges: tuple[str, ...],
                       counts: Sequence[float], sum_value: float) -> None:
        """``add_histogram`` with the ``le`` edges (``+Inf`` last) and their cumulative counts
        apart: a source whose edges never change passes the same tuple every scrape. The child
        is kept whole (``children.Child``), ``counts`` as given: a list made for this scrape."""
        fam, values = self._get(spec, labels)
        child = series.child(spec.name + "_bucket", spec.name,
                             tuple(zip(spec.labels, values, strict=True)), "le", edges)
        made = Child(spec.name + "_bucket", child, counts, counts[-1], sum_value,
                     float(edges[0]) >= 0)
        if isinstance(fam, HistogramFamily):
            fam.add_child(made)
        else:  # a family another collector made, merged in first
            fam.samples.extend(made.samples())

    def add_summary(
        self,
        spec: MetricSpec,
        labels: Mapping[str, str],
        count: float,
        sum_value: float,
        quantiles: Mapping[str, float],
    ) -> None:
        """Add one summary child with precomputed quantiles (``{"0.99": seconds, ...}``):
        the quantiles' samples, then the ``_count`` and ``_sum`` ones
        ``SummaryMetricFamily.add_metric`` makes, kept as one child (``children.Child``)."""
        fam, values = self._get(spec, labels)
        name = fam.name
        child = series.child(name, name, tuple(zip(spec.labels, values, strict=True)),
                             "quantile", tuple(quantiles))
        made = Child(name, child, list(quantiles.values()), count, sum_value, True)
        if isinstance(fam, SummaryFamily):
            fam.add_child(made)
        else:  # a family another collector made, merged in first
            fam.samples.extend(made.samples())

    def extend(self, metrics: Iterable[Metric]) -> None:
        """Merge already-built families (another target's, another collector's, or a
        prometheus_client metric's): borrowed, not copied, until a second family of the same
        name has to be merged into one (``_own``)."""
        families, borrowed = self._families, self._borrowed
        for metric in metrics:
            name = metric.name
            fam = families.get(name)
            if fam is None:
                families[name] = metric
                borrowed.add(name)
                continue
            if name in borrowed:
                fam = self._own(name)
            if isinstance(fam, WITH_CHILDREN):
                fam.merge(metric)
            else:
                fam.samples.extend(metric.samples)

    def __iter__(self) -> Iterator[Metric]:
        """Families with at least one sample: an empty family is only noise in the output.
        Readers must not change them: some are borrowed (see the class)."""
        return (f for f in self._families.values()
                if (f._samples or f.children  # type: ignore[attr-defined]
                    if f.__class__ in WITH_CHILDREN else f.samples))


def markdown_table(specs: Iterable[MetricSpec]) -> str:
    """docs/metrics.md's reference table for ``specs`` (``sources.specs()``: the core's and
    every registered source's), generated so it cannot drift from the code."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in specs:
        labels = ", ".join(f"`{label}`" for label in spec.labels)
        rows.append(f"| `{spec.name}` | {spec.kind.value} | {labels} | {spec.help} |")
    return "\n".join(rows) + "\n"

