"""Turns collectors into one exposition: collected concurrently, families merged by name.

Several collectors may feed one contract family (Redis and, later, builds both feed
``cachewatch_cache_lookups_total``); a text exposition may name a family only once, so the
families are merged here before encoding.
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import __version__, contract
from .contract import Families
from .target_collector import BaseTargetCollector


class BuildInfo(Collector):
    """``cachewatch_build_info``: which version is running."""

    def __init__(self) -> None:
        self._labels = {"version": __version__, "python_version": platform.python_version()}

    def collect(self) -> Iterator[Metric]:
        out = Families()
        out.add(contract.BUILD_INFO, self._labels, 1)
        yield from out


class Exposition:
    """A registry-like object (``collect()``) that prometheus_client's encoders accept."""

    def __init__(self, collectors: Sequence[Collector],
                 observe: Callable[[list[Metric]], None] | None = None) -> None:
        """``observe`` sees every collected exposition (the status page's history)."""
        self.collectors = list(collectors)
        self.observe = observe
        self._pulling = [c for c in self.collectors if isinstance(c, BaseTargetCollector)]

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
        local = {id(c): list(c.collect()) for c in self.collectors
                 if not isinstance(c, BaseTargetCollector)}
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
        metrics = await self.collect_async()
        encoder, content_type = choose_encoder(accept or "")
        return _fast(encoder)(_Fixed(metrics)), content_type  # type: ignore[arg-type]

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Encode for the client's ``Accept`` header (OpenMetrics when asked, else text 0.0.4)."""
        encoder, content_type = choose_encoder(accept or "")
        return _fast(encoder)(self), content_type  # type: ignore[arg-type]


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


def _escape(text: str) -> str:
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return text


def _number(value: float) -> str:
    """``floatToGoString`` with a fast path: between -1e6 and 1e6 Go and Python agree."""
    if value.__class__ is float and -1e6 < value < 1e6:
        return repr(value)
    return floatToGoString(value)


# "# HELP/# TYPE" lines by family: the same few dozen strings on every scrape.
_HEADERS: dict[tuple[str, str, str, str], str] = {}


def _header(metric: Metric) -> str:
    key = (metric.name, metric.documentation, metric.type, metric.unit)
    header = _HEADERS.get(key)
    if header is None:
        name = metric.name
        header = f"# HELP {name} {_escape(metric.documentation)}\n# TYPE {name} {metric.type}\n"
        if metric.unit:
            header += f"# UNIT {name} {metric.unit}\n"
        if len(_HEADERS) < 4096:  # bounded: names come from the contract, but be safe
            _HEADERS[key] = header
    return header


def _openmetrics(registry: Collector, fallback: Callable[[Collector], bytes]) -> bytes:
    metrics = list(registry.collect())
    out: list[str] = []
    append = out.append
    for metric in metrics:
        append(_header(metric))
        for sample in metric.samples:
            name, labels, value, timestamp = sample[:4]
            if timestamp is not None or any(sample[4:]):  # an exemplar, a native histogram
                return fallback(_Fixed(metrics))
            if labels:
                pairs = ",".join([k + '="' + _escape(v) + '"' for k, v in sorted(labels.items())])
                append(f"{name}{{{pairs}}} {_number(value)}\n")
            else:
                append(f"{name} {_number(value)}\n")
    append("# EOF\n")
    return "".join(out).encode("utf-8")


class _Fixed:
    """Already-collected families, for the fallback encoder."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)
