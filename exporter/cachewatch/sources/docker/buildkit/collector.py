"""The ``buildkit`` collector: BuildKit daemons' build history, counted once into the state store.

Each build becomes the ``BuildSummary`` an ingested log gives and is counted by the same
``BuildCollector`` logic, on a ledger of its own (``buildkit``), with ``source="buildkit"``:
``cachewatch_docker_builds_total``, ``_build_steps_total``, step and rebuild seconds, the duration
histogram, the cache busters, and ``cachewatch_cache_lookups_total{layer="docker_build"}``.

Once means once across restarts of either side: the refs counted for a target are a record in the
state store, changed in the same transaction as the counts they add (``state.Update``), so a ref
is either counted and remembered or neither. The record holds only refs the daemon still keeps
(trimmed at each connection), so it stays as small as the daemon's own retention.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric

from ....config import ConfigError

try:  # the extra's presence, checked before the modules that need it are imported
    import google.protobuf  # noqa: F401
    import grpc  # noqa: F401
except ImportError as exc:
    raise ConfigError(f"the buildkit collector needs grpcio and protobuf ({exc.name} is"
                      " missing): pip install 'cachewatch[buildkit]'") from None

from ....metrics import contract
from ....metrics.contract import Families
from ....runtime import Runtime
from ....source import Source
from ....state import Counts, Ledger, StateError, Update
from ..buildlog import BuildSummary
from ..builds import BuildCollector
from ..last_builds import LastBuilds
from ..settings import BuildSettings
from .follower import REASONS, Follower
from .settings import BuildkitSettings

SOURCE = "buildkit"  # the `source` label and the ledger's name
KEEP_REFS_FOR = 400 * 86400  # a target's counted refs outlive any daemon retention one sets


class HistoryCounts:
    """Counts builds into the ``buildkit`` ledger, once per (target, ref); called from the
    followers' threads, committed on the serving loop as every write to the state store is."""

    def __init__(self, settings: BuildkitSettings, ledger: Ledger, timeout: float) -> None:
        self.builds = BuildCollector(
            BuildSettings(max_images=settings.max_images,
                          max_cache_busters=settings.max_cache_busters), ledger, source=SOURCE)
        self.ledger = ledger
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.version = 0  # bumped by every commit that counted something

    def counted(self, target: str, present: Iterable[str]) -> set[str]:
        keep = set(present)

        def trim(old: Any) -> tuple[Any, Counts, Any]:
            refs = [ref for ref in _refs(old) if ref in keep]
            return {"refs": refs}, {}, set(refs)

        return self._commit(Update(_key(target), trim, KEEP_REFS_FOR))

    def count(self, target: str, ref: str, build: BuildSummary) -> bool:
        counts = self.builds.change(build, build.image, build.target).counts

        def claim(old: Any) -> tuple[Any, Counts, Any]:
            refs = _refs(old)
            if ref in refs:
                return old, {}, False
            return {"refs": [*refs, ref]}, counts, True

        counted = self._commit(Update(_key(target), claim, KEEP_REFS_FOR))
        if counted:
            self.version += 1
            self.builds.remember(build, build.image)
        return counted

    def _commit(self, update: Update) -> Any:
        """Commit on the serving loop and wait; ``StateError`` if it cannot be stored now."""
        if self.loop is None or self.loop.is_closed():
            raise StateError("the exporter is not serving")
        future = asyncio.run_coroutine_threadsafe(self.ledger.record([], update), self.loop)
        try:
            return future.result(timeout=self.timeout).value
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StateError(f"the state store took over {self.timeout:g}s") from None


def _key(target: str) -> str:
    return f"refs:{target}"


def _refs(record: Any) -> list[str]:
    return list(record.get("refs", [])) if isinstance(record, dict) else []


class BuildkitCollector(Source):
    """Follows every configured daemon; exports what the ledger holds and whether each is up."""

    name = "buildkit"

    def __init__(self, settings: BuildkitSettings, runtime: Runtime) -> None:
        self.settings = settings
        self.health = runtime.health
        self.counts = HistoryCounts(settings, runtime.state.ledger(SOURCE),
                                    timeout=runtime.state.timeout + settings.timeout)
        self.followers = [
            Follower(target, self.counts, self._reporter(target.label), settings.timeout,
                     settings.reconnect_max)
            for target in settings.targets]
        self.health.expect(self.name, [f.name for f in self.followers], REASONS)
        self._rendered: tuple[tuple[int, int], list[Metric]] = ((-1, -1), [])

    @property
    def last_builds(self) -> LastBuilds:
        """The last build of each image this collector counted, for the status page."""
        return self.counts.builds.last_builds

    def _reporter(self, target: str) -> Any:
        def report(up: bool, reason: str | None, message: str | None) -> None:
            if up and reason:  # working, but something was left out: counted, not a state
                self.health.count_error(self.name, target, reason)
            else:
                self.health.record(self.name, target, up=up, duration=0.0, reason=reason,
                                   message=message)
        return report

    def start(self) -> None:
        self.counts.loop = asyncio.get_running_loop()
        for follower in self.followers:
            follower.start()

    def close(self) -> None:
        for follower in self.followers:
            follower.stop(wait=0.0)  # cancelled now; their threads end on their own

    def families(self) -> list[Metric]:
        """The build families, rendered again only after a build was counted (or the ledger
        was read back from the store): scrapes are frequent, builds rare."""
        version = (self.counts.version, self.counts.ledger.epoch)
        if self._rendered[0] != version:
            self._rendered = (version, list(self.counts.builds.collect()))
        return self._rendered[1]

    def collect(self) -> Iterator[Metric]:
        out = Families()
        names = [follower.name for follower in self.followers]
        for follower in self.followers:
            out.add(contract.COLLECTOR_UP, {"collector": self.name, "target": follower.name},
                    1.0 if follower.up else 0.0)
        for target, reason, count in self.health.errors(self.name, names):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": self.name, "target": target, "reason": reason}, count)
        out.extend(self.families())
        self.health.completed(self.name)
        yield from out


def build(section: BuildkitSettings, runtime: Runtime) -> BuildkitCollector:
    """The followers of ``buildkit.targets``; imports grpc (the ``cachewatch[buildkit]`` extra)."""
    return BuildkitCollector(section, runtime)
