"""Docker Engine collector: build cache and image disk usage, and image events, read-only.

``GET /system/df`` on each scrape (the docker SDK, on ``DOCKER_HOST``), in either of its two
shapes: before API 1.52 it lists ``BuildCache`` records and ``Images``; from 1.52 on it answers
``BuildCacheDiskUsage`` / ``ImagesDiskUsage`` summaries whose ``Items`` hold the same records.
An events watcher (its own thread, reconnecting with back-off) counts image and builder events.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from ... import contract
from ...contract import Families
from ...health import Health
from ...runtime import Runtime
from ...target_collector import TargetCollector
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


def disk_usage(df: dict[str, Any], host: str) -> Families:
    """Families from a ``/system/df`` answer of either shape."""
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
        key = (str(record.get("Type") or "unknown"), _flag(record.get("InUse")),
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


def _flag(value: Any) -> str:
    return "true" if value else "false"


def _is_dangling(image: dict[str, Any]) -> bool:
    tags = image.get("RepoTags") or []
    return not [t for t in tags if t and t != "<none>:<none>"]


class EventCounter:
    """Counts engine events in a thread of its own; reconnects with back-off when cut off."""

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
                self.connected.set()
                log.info("watching docker events", extra={"host": self._settings.name})
                backoff = 0.5
                for event in stream:
                    self._count(event)
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

    def families(self) -> Families:
        out = Families()
        with self._lock:
            for (type_, action), count in sorted(self._counts.items()):
                out.add(contract.DOCKER_EVENTS,
                        {"host": self._settings.name, "type": type_, "action": action}, count)
        return out


class DockerEngineCollector(TargetCollector):
    """One engine (``docker.host``), read with ``GET /system/df`` on each scrape."""

    name = "docker"
    reasons = (*REASONS, "events")

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
