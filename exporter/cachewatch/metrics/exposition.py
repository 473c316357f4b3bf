"""Turns collectors into one exposition: collected concurrently, families merged by name.

Several collectors may feed one contract family (every source's feed
``cachewatch_cache_lookups_total``); a text exposition may name a family only once, so the
families are merged here before encoding.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import resource
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache, partial

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .. import __version__
from ..collectors.target_collector import BaseTargetCollector
from . import contract
from .children import WITH_CHILDREN
from .contract import Families, Kind
from .labels import safe_text
from .series import SeriesLabels, escape, series

log = logging.getLogger("cachewatch.exposition")


class BuildInfo(Collector):
    """``cachewatch_build_info``: which version is running."""

    def __init__(self) -> None:
        out = Families()
        out.add(contract.BUILD_INFO, {"version": __version__,
                                      "python_version": platform.python_version()}, 1)
        self._families = list(out)  # never changes: made once (``metrics.cached``)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class ProcessMetrics(Collector):
    """The standard ``process_*`` families, as prometheus_client's ``ProcessCollector`` writes
    them, for less: the start time once, CPU from ``times()``, the open-file limit from
    ``getrlimit()``; per scrape one read of ``/proc/self/statm`` and a listing of the process'
    descriptors (three files and a listing before). Nothing on systems without ``/proc``."""

    def __init__(self) -> None:
        self._page = resource.getpagesize()
        self._families = [
            (name, Metric(name.removesuffix("_total") if kind is Kind.COUNTER else name,
                          documentation, kind.value))
            for name, kind, documentation in contract.PROCESS_FAMILIES]
        self._start: float | None = None
        try:
            with open("/proc/self/stat", "rb") as stat:
                started_ticks = float(stat.read().rsplit(b")", 1)[1].split()[19])
            with open("/proc/stat", "rb") as system:
                boot = next(float(line.split()[1]) for line in system
                            if line.startswith(b"btime "))
            self._start = boot + started_ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, StopIteration, ValueError, IndexError):
            pass  # no /proc: the collector yields nothing

    def collect(self) -> Iterator[Metric]:
        if self._start is None:
            return
        try:
            # os.open/read, not open(): no file object and buffer per scrape (half the cost)
            statm = os.open("/proc/self/statm", os.O_RDONLY)
            try:
                size, resident = os.read(statm, 512).split()[:2]
            finally:
                os.close(statm)
            open_fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            return
        times = os.times()
        values = (float(size) * self._page, float(resident) * self._page, self._start,
                  times.user + times.system, float(open_fds),
                  float(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        for (name, template), value in zip(self._families, values, strict=True):
            family = object.__new__(Metric)  # a copy of the template: no name checks again
            family.__dict__.update(template.__dict__)
            family.samples = [Sample(name, {}, value)]
            yield family


class Exposition:
    """A ``CollectorRegistry``-like object (``collect()``) that prometheus_client's encoders
    accept."""

    def __init__(self, collectors: Sequence[Collector],
                 observe: Callable[[list[Metric]], None] | None = None) -> None:
        """``observe`` sees every collected exposition (the status page's history)."""
        self.collectors = list(collectors)
        self.observe = observe
        self._pulling = [c for c in self.collectors if isinstance(c, BaseTargetCollector)]
        # Decided once: an isinstance() against an ABC per collector per scrape adds up.
        self._local = [c for c in self.collectors if not isinstance(c, BaseTargetCollector)]

    def collect(self) -> Iterator[Metric]:
        """Every collector's families, merged by name (from outside the event loop)."""
        merged = Families()
        for collector in self.collectors:
            merged.extend(collector.collect())
        yield from merged

    async def collect_async(self) -> list[Metric]:
        """Every collector's families on the event loop, target reads side by side so their
        deadlines overlap instead of adding up, merged by name in ``collect()``'s order."""
        reads = [asyncio.ensure_future(c.collect_async()) for c in self._pulling]
        if reads:
            await asyncio.sleep(0)  # let the reads send their requests before the rest runs
        local = {id(c): list(c.collect()) for c in self._local}
        pulled = dict(zip((id(c) for c in self._pulling), await asyncio.gather(*reads),
                          strict=True))
        merged = Families()
        for collector in self.collectors:
            merged.extend(local.get(id(collector)) or pulled.get(id(collector)) or ())
        metrics = list(merged)
        if self.observe is not None:
            self.observe(metrics)
        return metrics

    async def render_async(self, accept: str | None) -> tuple[bytes, str]:
        """Collect and encode on the event loop. Collectors that block read on worker threads
        (``TargetCollector``); everything else is in memory, and the encoding of an exposition
        takes well under a millisecond, less than handing it to a thread and back."""
        return _encode(await self.collect_async(), accept)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Encode for the client's ``Accept`` header (OpenMetrics when asked, else text 0.0.4)."""
        return _encode(list(self.collect()), accept)


def _encode(metrics: list[Metric], accept: str | None) -> tuple[bytes, str]:
    encoder, content_type = _encoder(accept or "")
    try:
        return encoder(_Fixed(metrics)), content_type  # type: ignore[arg-type]
    except UnicodeEncodeError:
        # Receivers make outside strings safe (labels.safe_label); should one slip through
        # anyway, this scrape still answers, with the bad characters replaced.
        log.error("a label value could not be encoded; scrape answered with it replaced")
        return encoder(_Safe(_Fixed(metrics))), content_type  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def _encoder(accept: str) -> tuple[Callable[[Collector], bytes], str]:
    """The encoder for an ``Accept`` header: a scraper sends the same one every time, and
    parsing it is a good part of a small scrape's cost."""
    encoder, content_type = choose_encoder(accept)
    return _fast(encoder), content_type


def _fast(encoder: Callable[[Collector], bytes]) -> Callable[[Collector], bytes]:
    """The same encoding for OpenMetrics 1.0 (what Prometheus asks for), at a fraction of
    prometheus_client's per-sample cost: it escapes every name rune by rune and formats each
    line through several layers. Every name exported here is a legacy
    (``[a-zA-Z_:][a-zA-Z0-9_:]*``) name, which the contract enforces; for those this writes
    byte-identical output (a test compares the two on a real exposition). Anything unusual
    (exemplars, native histograms, other versions) goes to the library's encoder.
    """
    if isinstance(encoder, partial) and encoder.func is openmetrics.generate_latest \
            and encoder.keywords.get("version") == "1.0.0":
        return partial(_openmetrics, fallback=partial(
            encoder.func, *encoder.args, **{**encoder.keywords,
                                            "escaping": openmetrics.ALLOWUTF8}))
    return encoder


# "# HELP/# TYPE" lines by family: the same few dozen strings on every scrape.
_HEADERS: dict[tuple[str, str, str, str], str] = {}


def _header(metric: Metric) -> str:
    key = (metric.name, metric.documentation, metric.type, metric.unit)
    header = _HEADERS.get(key)
    if header is None:
        name = metric.name
        header = f"# HELP {name} {escape(metric.documentation)}\n# TYPE {name} {metric.type}\n"
        if metric.unit:
            header += f"# UNIT {name} {metric.unit}\n"
        if len(_HEADERS) < 4096:  # bounded: names come from the contract, but be safe
            _HEADERS[key] = header
    return header


def _series(name: str, labels: dict[str, str]) -> str:
    """A rendered sample name and labels that came without them (a prometheus_client family's
    sample; ``Families`` gives its samples ``SeriesLabels``)."""
    return series(name, tuple(labels.items())).text


def _openmetrics(registry: Collector, fallback: Callable[[Collector], bytes]) -> bytes:
    metrics = list(registry.collect())
    if len(Sample._fields) != 6:  # a prometheus_client whose samples this loop does not know
        return fallback(_Fixed(metrics))
    out: list[str] = []
    append = out.append
    for metric in metrics:
        append(_header(metric))
        if metric.__class__ in WITH_CHILDREN:  # its children follow its samples
            samples, children = metric._samples, metric.children  # type: ignore[attr-defined]
        else:
            samples, children = metric.samples, ()
        for name, labels, value, timestamp, exemplar, native_histogram in samples:
            if timestamp is not None or exemplar or native_histogram:
                return fallback(_Fixed(metrics))
            # floatToGoString, inlined: between -1e6 and 1e6 Go and Python write floats alike
            # (an int as the float it is written as: counters kept as ints)
            if value.__class__ is float and -1e6 < value < 1e6:
                number = repr(value)
            elif value.__class__ is int and -1_000_000 < value < 1_000_000:
                number = repr(float(value))
            else:
                number = floatToGoString(value)
            if labels.__class__ is SeriesLabels and labels.name == name:
                append(labels.text + number + "\n")
            elif labels:
                append(_series(name, labels) + number + "\n")
            else:
                append(f"{name} {number}\n")
        for child in children:
            append(child.text())
    append("# EOF\n")
    return "".join(out).encode("utf-8")


class _Fixed:
    """Already-collected families, for the fallback encoder."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class _Safe:
    """A ``CollectorRegistry``'s families with every label value and help text made encodable:
    copies, as the families may be borrowed from a collector (``Families``)."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            safe = Metric(metric.name, safe_text(metric.documentation), metric.type,
                          metric.unit)
            safe.samples = [sample._replace(labels={k: safe_text(v) for k, v
                                                    in sample.labels.items()})
                            for sample in metric.samples]
            yield safe
