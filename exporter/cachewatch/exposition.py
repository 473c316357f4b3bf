"""Turns collectors into one exposition: collected concurrently, families merged by name.

Several collectors may feed one contract family (Redis and, later, builds both feed
``cachewatch_cache_lookups_total``); a text exposition may name a family only once, so the
families are merged here before encoding.
"""

from __future__ import annotations

import asyncio
import logging
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
from .labels import safe_text
from .runtime import Runtime
from .target_collector import TargetCollector

log = logging.getLogger("cachewatch.exposition")


class BuildInfo(Collector):
    """``cachewatch_build_info``: which version is running."""

    def collect(self) -> Iterator[Metric]:
        out = Families()
        out.add(contract.BUILD_INFO,
                {"version": __version__, "python_version": platform.python_version()}, 1)
        yield from out


class Exposition:
    """A registry-like object (``collect()``) that prometheus_client's encoders accept."""

    def __init__(self, collectors: Sequence[Collector], runtime: Runtime | None = None) -> None:
        """Without a ``runtime`` (tests, one-off renders) collectors are read one after the
        other in the calling thread."""
        self.collectors = list(collectors)
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """Every collector's families, target collectors read concurrently, merged by name."""
        slow = [c for c in self.collectors if isinstance(c, TargetCollector)]
        merged = Families()
        if self.runtime is None:
            for collector in self.collectors:
                merged.extend(collector.collect())
            yield from merged
            return
        # Collectors run side by side so their deadlines overlap instead of adding up.
        futures = [self.runtime.collects.submit(lambda c=c: list(c.collect()))
                   for c in slow[1:]]
        if slow:
            merged.extend(slow[0].collect())
        for collector in self.collectors:
            if not isinstance(collector, TargetCollector):
                merged.extend(collector.collect())
        for future in futures:
            merged.extend(future.result())
        yield from merged

    async def render_async(self, accept: str | None, *, probe: bool = False
                           ) -> tuple[bytes, str]:
        """``render`` in a worker thread: collectors block, the event loop must not."""
        pool = None
        if self.runtime is not None:
            pool = self.runtime.probe_scrapes if probe else self.runtime.scrapes
        return await asyncio.get_running_loop().run_in_executor(pool, self.render, accept)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Encode for the client's ``Accept`` header (OpenMetrics when asked, else text 0.0.4)."""
        encoder, content_type = choose_encoder(accept or "")
        try:
            return _fast(encoder)(self), content_type  # type: ignore[arg-type]
        except UnicodeEncodeError:
            # Receivers make outside strings safe (labels.safe_label); should one slip through
            # anyway, this scrape still answers, with the bad characters replaced.
            log.error("a label value could not be encoded; scrape answered with it replaced")
            return _fast(encoder)(_Safe(self)), content_type  # type: ignore[arg-type]


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
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _openmetrics(registry: Collector, fallback: Callable[[Collector], bytes]) -> bytes:
    metrics = list(registry.collect())
    out: list[str] = []
    for metric in metrics:
        name = metric.name
        out.append(f"# HELP {name} {_escape(metric.documentation)}\n# TYPE {name} {metric.type}\n")
        if metric.unit:
            out.append(f"# UNIT {name} {metric.unit}\n")
        for sample in metric.samples:
            if sample.exemplar or sample.native_histogram or sample.timestamp is not None:
                return fallback(_Fixed(metrics))
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
                out.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}\n")
            else:
                out.append(f"{sample.name} {floatToGoString(sample.value)}\n")
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


class _Fixed:
    """Already-collected families, for the fallback encoder."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class _Safe:
    """A registry's families with every label value and help text made encodable."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.documentation = safe_text(metric.documentation)
            metric.samples = [sample._replace(labels={k: safe_text(v) for k, v
                                                      in sample.labels.items()})
                              for sample in metric.samples]
            yield metric
