"""Docker Engine collector: build cache and image disk usage, and image events, read-only.

``GET /system/df`` on each scrape (the docker SDK, on ``DOCKER_HOST``), in either of its two
shapes: before API 1.52 it lists ``BuildCache`` records and ``Images``; from 1.52 on it answers
``BuildCacheDiskUsage`` / ``ImagesDiskUsage`` summaries whose ``Items`` hold the same records.
An events watcher (its own thread, reconnecting with back-off) counts image and builder events,
and judges each image pull against the node's layers (``pulls.PullTracker``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from ...collectors.health import Health
from ...collectors.target_collector import TargetCollector
from ...metrics.contract import Families
from ...metrics.labels import safe_label
from ...runtime import Runtime
from . import contract
from .history import BuildHistory
from .pulls import PullTracker
from .settings import DockerSettings

if TYPE_CHECKING:
    import docker

log = logging.getLogger("cachewatch.docker")


def _sdk() -> Any:
    """The docker SDK, imported when the collector is first used: it (with requests) adds
    ~10 MB to every exporter, and most run without the docker collector."""
    import docker

    return docker

REASONS = ("timeout", "connection", "permission", "protocol", "other")
IMAGE_ACTIONS = ("pull", "push", "delete", "import", "load", "save", "tag", "untag", "prune")
BUILDER_ACTIONS = ("prune",)


def disk_usage(df: dict[str, Any], host: str, now: float | None = None) -> Families:
    """Families from a ``/system/df`` answer of either shape."""
    now = time.time() if now is None else now
    out = Families()
    cache = df.get("BuildCache")
    images = df.get("Images")
    cache_usage = df.get("BuildCacheDiskUsage") or df.get("BuildCacheUsage") or {}
    image_usage = df.get("ImagesDiskUsage") or df.get("ImagesUsage") or {}
    if cache is None:
        cache = cache_usage.get("Items") or []
    if images is None:
        images = image_usage.get("Items") or []

    groups: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    reclaimable = 0.0
    usage = 0.0
    for record in cache or []:
        key = (safe_label(record.get("Type") or "unknown"), _flag(record.get("InUse")),
               _flag(record.get("Shared")))
        size = float(record.get("Size") or 0)
        groups[key][0] += size
        groups[key][1] += 1
        usage += float(record.get("UsageCount") or 0)
        # As `docker system df` counts it: shared records are not the cache's own to free.
        if not record.get("InUse") and not record.get("Shared"):
            reclaimable += size
    for (type_, in_use, shared), (size, count) in sorted(groups.items()):
        labels = {"host": host, "type": type_, "in_use": in_use, "shared": shared}
        out.add(contract.DOCKER_BUILD_CACHE_BYTES, labels, size)
        out.add(contract.DOCKER_BUILD_CACHE_RECORDS, labels, count)
    if cache_usage and not cache:
        # 1.52+ without Items: the engine's own totals are all there is
        labels = {"host": host, "type": "all", "in_use": "all", "shared": "all"}
        out.add(contract.DOCKER_BUILD_CACHE_BYTES, labels, float(cache_usage.get("TotalSize", 0)))
        out.add(contract.DOCKER_BUILD_CACHE_RECORDS, labels,
                float(cache_usage.get("TotalCount", 0)))
    if "Reclaimable" in cache_usage:
        reclaimable = float(cache_usage["Reclaimable"])
    out.add(contract.DOCKER_BUILD_CACHE_RECLAIMABLE, {"host": host}, reclaimable)
    out.add(contract.DOCKER_BUILD_CACHE_USAGE, {"host": host}, usage)
    _cache_ages(out, cache or [], host, now)

    if not images and "TotalCount" in image_usage:  # 1.52+ without Items: totals only
        out.add(contract.DOCKER_IMAGES, {"host": host, "dangling": "unknown"},
                float(image_usage["TotalCount"]))
    else:
        dangling = sum(1 for image in images if _is_dangling(image))
        out.add(contract.DOCKER_IMAGES, {"host": host, "dangling": "true"}, dangling)
        out.add(contract.DOCKER_IMAGES, {"host": host, "dangling": "false"},
                len(images) - dangling)
    out.add(contract.DOCKER_IMAGES_BYTES, {"host": host},
            sum(float(i.get("Size") or 0) for i in images))
    out.add(contract.DOCKER_IMAGES_SHARED_BYTES, {"host": host},
            sum(max(0.0, float(i.get("SharedSize") or 0)) for i in images))
    layers = df.get("LayersSize", image_usage.get("TotalSize", 0))
    out.add(contract.DOCKER_LAYERS_BYTES, {"host": host}, float(layers or 0))
    return out


def _cache_ages(out: Families, records: list[dict[str, Any]], host: str, now: float) -> None:
    """Bytes and records by how recently each cache record was last used (cumulative)."""
    sizes = [0.0] * (len(contract.BUILD_CACHE_AGE_BUCKETS) + 1)
    counts = [0] * len(sizes)
    for record in records:
        used = _timestamp(record.get("LastUsedAt") or record.get("CreatedAt"))
        age = max(0.0, now - used) if used is not None else float("inf")
        index = bisect_left(contract.BUILD_CACHE_AGE_BUCKETS, age)
        sizes[index] += float(record.get("Size") or 0)
        counts[index] += 1
    total_size, total_count = 0.0, 0
    edges = [*(floatToGoString(b) for b in contract.BUILD_CACHE_AGE_BUCKETS), "+Inf"]
    for edge, size, count in zip(edges, sizes, counts, strict=True):
        total_size += size
        total_count += count
        out.add(contract.DOCKER_BUILD_CACHE_IDLE_BYTES, {"host": host, "within": edge},
                total_size)
        out.add(contract.DOCKER_BUILD_CACHE_IDLE_RECORDS, {"host": host, "within": edge},
                total_count)


def _timestamp(value: Any) -> float | None:
    """The engine's RFC 3339 times (nanosecond fractions, ``Z``) as Unix seconds."""
    if not value or not isinstance(value, str) or value.startswith("0001-"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _flag(value: Any) -> str:
    return "true" if value else "false"


def _is_dangling(image: dict[str, Any]) -> bool:
    tags = image.get("RepoTags") or []
    return not [t for t in tags if t and t != "<none>:<none>"]


class EventCounter:
    """Counts engine events in a thread of its own; reconnects with back-off when cut off.

    ``image tag`` events also feed the build history (``history.BuildHistory``) when it is on:
    every ``docker build -t`` emits one, fully cached builds included. Image events keep the
    node's layer inventory current and ``pull`` events are judged against it
    (``pulls.PullTracker``).
    """

    def __init__(self, settings: DockerSettings, health: Health, collector: str) -> None:
        self._settings = settings
        self._health = health
        self._collector = collector
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {
            **{("image", a): 0 for a in IMAGE_ACTIONS},
            **{("builder", a): 0 for a in BUILDER_ACTIONS},
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: docker.DockerClient | None = None
        self._stream: Any = None
        self.connected = threading.Event()
        self.history: BuildHistory | None = None
        self.pulls: PullTracker | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cachewatch-docker-events",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()  # closes the response socket: unblocks the thread's read
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._client = _sdk().DockerClient(base_url=self._settings.host, timeout=None)
                stream = self._stream = self._client.events(
                    decode=True, filters={"type": ["image", "builder"]})
                if self._settings.history and self.history is None:
                    api = self._client.api
                    self.history = BuildHistory(api.history, api.images,
                                                self._settings.history_max_images)
                    self.history.prime()
                self._inventory(self._client.api)
                self.connected.set()
                log.info("watching docker events", extra={"host": self._settings.name})
                backoff = 0.5
                for event in stream:
                    self._count(event)
                    self._build(event)
                    self._pull(event)
                    if self._stop.is_set():
                        return
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._health.count_error(self._collector, self._settings.name, "events")
                log.debug("docker events stream lost", extra={"error": str(exc)})
            finally:
                self.connected.clear()
                if self._client is not None:
                    self._client.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _count(self, event: dict[str, Any]) -> None:
        type_ = str(event.get("Type") or "")
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
        if type_ not in ("image", "builder"):
            return
        known = IMAGE_ACTIONS if type_ == "image" else BUILDER_ACTIONS
        key = (type_, action if action in known else "other")
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def _inventory(self, api: Any) -> None:
        """The node's layers, read in full on each (re)connection: events may have been
        missed while the stream was down."""
        if self.pulls is None:
            self.pulls = PullTracker(
                api.inspect_image, api.history,
                lambda: [str(i) for i in api.images(all=True, quiet=True)],
                self._settings.name, self._settings.history_max_images)
        self.pulls.sync()

    def _pull(self, event: dict[str, Any]) -> None:
        """Image events keep the layer inventory current; a ``pull`` is judged against it."""
        if self.pulls is None or event.get("Type") != "image":
            return
        try:
            pull = self.pulls.on_event(event)
        except Exception as exc:  # the image may be gone already; one pull lost, not the watch
            self._health.count_error(self._collector, self._settings.name, "pulls")
            log.debug("pulled image unreadable", extra={"event": event.get("id"),
                                                        "error": str(exc)})
            return
        if pull is not None:
            log.info("image pulled", extra={"image": pull.image, "reused": pull.reused,
                                            "fetched": pull.fetched})

    def _build(self, event: dict[str, Any]) -> None:
        """A ``tag`` event is a build (or a re-tag): read the history it points at."""
        if self.history is None or event.get("Type") != "image" or event.get("Action") != "tag":
            return
        tag = str((event.get("Actor") or {}).get("Attributes", {}).get("name") or "")
        image_id = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
        if not tag or not image_id:
            return
        try:
            build = self.history.on_tag(image_id, tag)
        except Exception as exc:  # the image may be gone already; one build lost, not the watch
            self._health.count_error(self._collector, self._settings.name, "history")
            log.debug("image history unreadable", extra={"image": tag, "error": str(exc)})
            return
        log.info("build seen in the engine's history", extra={
            "image": build.image, "hits": build.hits, "lookups": build.lookups,
            "cache_buster": build.cache_buster or "-"})

    def families(self) -> Families:
        out = Families()
        if self.history is not None:
            out.extend(self.history.families())
        if self.pulls is not None:
            out.extend(self.pulls.families())
        with self._lock:
            for (type_, action), count in sorted(self._counts.items()):
                out.add(contract.DOCKER_EVENTS,
                        {"host": self._settings.name, "type": type_, "action": action}, count)
        return out


class DockerEngineCollector(TargetCollector):
    """One engine (``docker.host``), read with ``GET /system/df`` on each scrape."""

    name = "docker"
    reasons = (*REASONS, "events", "history", "pulls")

    def __init__(self, settings: DockerSettings, runtime: Runtime) -> None:
        super().__init__(runtime, settings.timeout)
        health = runtime.health
        self.settings = settings
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self.events = EventCounter(settings, health, self.name) if settings.events else None
        health.expect(self.name, [settings.name], self.reasons)

    def targets(self) -> Sequence[str]:
        return [self.settings.name]

    def _docker(self) -> docker.DockerClient:
        with self._client_lock:
            if self._client is None:
                # Reads only: /system/df here, /events in the watcher. Never a write call.
                self._client = _sdk().DockerClient(base_url=self.settings.host,
                                                   timeout=self.settings.timeout)
            return self._client

    def read(self, target: str) -> Families:
        try:
            df = self._docker().df()
        except Exception:
            with self._client_lock:  # a fresh client (and connection) next time
                if self._client is not None:
                    self._client.close()
                self._client = None
            raise
        return disk_usage(df, target)

    def classify(self, exc: BaseException) -> tuple[str, str]:
        import requests

        docker = _sdk()
        message = f"{type(exc).__name__}: {exc}"
        text = str(exc).lower()
        if isinstance(exc, requests.Timeout) or "timed out" in text:
            return "timeout", message
        if "permission denied" in text:
            return "permission", message + " (the exporter's user cannot open the Docker socket)"
        if isinstance(exc, requests.ConnectionError | docker.errors.DockerException | OSError) and (
                "connection" in text or "no such file" in text or "refused" in text):
            return "connection", message
        if isinstance(exc, docker.errors.APIError | ValueError | KeyError):
            return "protocol", message
        return "other", message

    def standing(self) -> Iterable[Metric]:
        return self.events.families() if self.events is not None else ()

    def start(self) -> None:
        if self.events is not None:
            self.events.start()

    def close(self) -> None:
        if self.events is not None:
            self.events.stop()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def build(section: DockerSettings, runtime: Runtime) -> DockerEngineCollector:
    """The engine on ``docker.host``; off unless enabled (it needs the socket)."""
    return DockerEngineCollector(section, runtime)
