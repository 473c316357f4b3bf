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
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample

PREFIX = "cachewatch_"
# Legacy Prometheus names: every scraper and query language version accepts them unquoted.
_LEGACY_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Layer(StrEnum):
    """Where a cache sits; the ``layer`` label of every core family."""

    DOCKER_BUILD = "docker_build"
    REGISTRY = "registry"
    REDIS = "redis"
    APP = "app"


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

    def __post_init__(self) -> None:
        if not _LEGACY_NAME.match(self.name) or not all(map(_LEGACY_NAME.match, self.labels)):
            raise ValueError(f"{self.name}: names and labels use [a-zA-Z_][a-zA-Z0-9_]* only")
        if not self.name.startswith(PREFIX):
            raise ValueError(f"{self.name}: every metric starts with {PREFIX}")
        if (self.kind is Kind.COUNTER) != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        if self.kind is Kind.INFO and not self.name.endswith("_info"):
            raise ValueError(f"{self.name}: info metrics end in _info")

    @property
    def family_name(self) -> str:
        """The name prometheus_client wants: it appends ``_total`` / ``_info`` itself."""
        if self.kind is Kind.COUNTER:
            return self.name.removesuffix("_total")
        if self.kind is Kind.INFO:
            return self.name.removesuffix("_info")
        return self.name


SPECS: dict[str, MetricSpec] = {}


def _spec(name: str, kind: Kind, help_: str, labels: Sequence[str], group: str) -> MetricSpec:
    spec = MetricSpec(PREFIX + name, kind, help_, tuple(labels), group)
    if spec.name in SPECS:
        raise ValueError(f"{spec.name} is defined twice")
    SPECS[spec.name] = spec
    return spec


CORE = "core"
SELF = "self"
REDIS = "redis"

# --- core families: every layer ---------------------------------------------------------------
CACHE_LOOKUPS = _spec(
    "cache_lookups_total", Kind.COUNTER,
    "Cache lookups by result (hit or miss); hit ratio = hits / (hits + misses), in PromQL.",
    ("layer", "cache", "result"), CORE)
CACHE_LATENCY = _spec(
    "cache_latency_seconds", Kind.HISTOGRAM,
    "Observed cache operation latency, client side (network included).",
    ("layer", "cache", "op"), CORE)
CACHE_EVICTIONS = _spec(
    "cache_evictions_total", Kind.COUNTER,
    "Entries evicted from the cache to make room.",
    ("layer", "cache"), CORE)
CACHE_ENTRIES = _spec(
    "cache_entries", Kind.GAUGE,
    "Entries held by the cache now.",
    ("layer", "cache"), CORE)
CACHE_BYTES = _spec(
    "cache_bytes", Kind.GAUGE,
    "Bytes used by the cache now.",
    ("layer", "cache"), CORE)

# --- self-monitoring (node_exporter style) ----------------------------------------------------
COLLECTOR_UP = _spec(
    "collector_up", Kind.GAUGE,
    "1 if the collector read its target successfully in this scrape, 0 if not.",
    ("collector", "target"), SELF)
COLLECTOR_DURATION = _spec(
    "collector_duration_seconds", Kind.GAUGE,
    "How long the collector took to read its target in this scrape.",
    ("collector", "target"), SELF)
COLLECTOR_ERRORS = _spec(
    "collector_errors_total", Kind.COUNTER,
    "Failed reads of a target, by reason (timeout, connection, auth, ...).",
    ("collector", "target", "reason"), SELF)
BUILD_INFO = _spec(
    "build_info", Kind.INFO,
    "cachewatch version and Python runtime; always 1.",
    ("version", "python_version"), SELF)

# --- Redis detail -----------------------------------------------------------------------------
REDIS_EXPIRED_KEYS = _spec(
    "redis_expired_keys_total", Kind.COUNTER,
    "Keys removed because their TTL ran out (INFO stats expired_keys).",
    ("cache",), REDIS)
REDIS_MAXMEMORY = _spec(
    "redis_maxmemory_bytes", Kind.GAUGE,
    "The maxmemory limit; 0 means no limit (INFO memory maxmemory).",
    ("cache",), REDIS)
REDIS_CONNECTED_CLIENTS = _spec(
    "redis_connected_clients", Kind.GAUGE,
    "Client connections open now, the exporter's own included (INFO clients).",
    ("cache",), REDIS)
REDIS_COMMANDS_PROCESSED = _spec(
    "redis_commands_processed_total", Kind.COUNTER,
    "Commands the server has processed (INFO stats total_commands_processed).",
    ("cache",), REDIS)
REDIS_DB_KEYS = _spec(
    "redis_db_keys", Kind.GAUGE,
    "Keys per logical database (INFO keyspace).",
    ("cache", "db"), REDIS)
REDIS_DB_KEYS_EXPIRING = _spec(
    "redis_db_keys_expiring", Kind.GAUGE,
    "Keys with a TTL per logical database (INFO keyspace).",
    ("cache", "db"), REDIS)
REDIS_SERVER_LATENCY = _spec(
    "redis_server_latency_seconds", Kind.SUMMARY,
    "Server-side command latency since the last stats reset: p50/p99/p99.9 from Redis 7"
    " INFO latencystats, count and sum from INFO commandstats; absent on older servers.",
    ("cache", "command"), REDIS)
REDIS_INFO = _spec(
    "redis_info", Kind.INFO,
    "Redis server version, role and mode; always 1.",
    ("cache", "version", "role", "mode"), REDIS)


# --- Docker builds (ingested logs) ----------------------------------------------------------
DOCKER_BUILD = "docker_build"
BUILD_DURATION_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
DOCKER_BUILDS = _spec(
    "docker_builds_total", Kind.COUNTER,
    "Builds by outcome (success, failed, cancelled); source: log (ingested) or engine (history).",
    ("image", "target", "status", "source"), DOCKER_BUILD)
DOCKER_BUILD_DURATION = _spec(
    "docker_build_duration_seconds", Kind.HISTOGRAM,
    "Wall-clock duration of ingested builds.",
    ("image", "target"), DOCKER_BUILD)
DOCKER_BUILD_STEPS = _spec(
    "docker_build_steps_total", Kind.COUNTER,
    "Cacheable build steps by result: hit (CACHED) or miss (executed); per image and target.",
    ("image", "target", "result", "source"), DOCKER_BUILD)
DOCKER_BUILD_STEP_SECONDS = _spec(
    "docker_build_step_seconds_total", Kind.COUNTER,
    "Seconds spent in cacheable steps, executed versus served from cache.",
    ("image", "target", "result"), DOCKER_BUILD)
DOCKER_BUILD_REBUILD_SECONDS = _spec(
    "docker_build_rebuild_seconds_total", Kind.COUNTER,
    "Seconds spent re-running steps in builds that had a usable cache: time lost to busted layers.",
    ("image", "target"), DOCKER_BUILD)
DOCKER_BUILD_CACHE_BUSTERS = _spec(
    "docker_build_cache_busters_total", Kind.COUNTER,
    "Builds whose first cache miss (after a hit) was this instruction, normalised.",
    ("image", "instruction", "source"), DOCKER_BUILD)
BUILD_INGEST_REJECTED = _spec(
    "build_ingest_rejected_total", Kind.COUNTER,
    "Build submissions refused, by reason (auth, too_large, malformed, duplicate).",
    ("reason",), DOCKER_BUILD)

# --- Docker Engine ----------------------------------------------------------------------------
DOCKER_ENGINE = "docker_engine"
DOCKER_BUILD_CACHE_BYTES = _spec(
    "docker_build_cache_bytes", Kind.GAUGE,
    "Build cache size by record type, in use and shared (GET /system/df).",
    ("host", "type", "in_use", "shared"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_RECORDS = _spec(
    "docker_build_cache_records", Kind.GAUGE,
    "Build cache records by type, in use and shared.",
    ("host", "type", "in_use", "shared"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_RECLAIMABLE = _spec(
    "docker_build_cache_reclaimable_bytes", Kind.GAUGE,
    "Build cache bytes a prune could free, as `docker system df` counts them.",
    ("host",), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_USAGE = _spec(
    "docker_build_cache_uses", Kind.GAUGE,
    "Sum of build cache records' usage counts: how often cached results were reused.",
    ("host",), DOCKER_ENGINE)
# Cumulative over `le`, like histogram buckets, but a snapshot: how much of the cache was used
# recently. A cache whose bytes all sit in the oldest buckets is bloated; one with nothing older
# than an hour is thrashing (pruned or evicted before it is reused).
BUILD_CACHE_AGE_BUCKETS: tuple[float, ...] = (
    3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0,
    90 * 86400.0)
DOCKER_BUILD_CACHE_IDLE_BYTES = _spec(
    "docker_build_cache_used_within_bytes", Kind.GAUGE,
    "Build cache bytes last used at most `within` seconds ago (cumulative; within=+Inf is all "
    "of it). Not `le`: promtool keeps that label for histograms.",
    ("host", "within"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_IDLE_RECORDS = _spec(
    "docker_build_cache_used_within_records", Kind.GAUGE,
    "Build cache records last used at most `within` seconds ago (cumulative; within=+Inf is "
    "all).",
    ("host", "within"), DOCKER_ENGINE)
DOCKER_IMAGES = _spec(
    "docker_images", Kind.GAUGE,
    "Images on the engine; dangling ones have no tag.",
    ("host", "dangling"), DOCKER_ENGINE)
DOCKER_IMAGES_BYTES = _spec(
    "docker_images_bytes", Kind.GAUGE,
    "Sum of image sizes, each counted whole (shared layers counted once per image).",
    ("host",), DOCKER_ENGINE)
DOCKER_IMAGES_SHARED_BYTES = _spec(
    "docker_images_shared_bytes", Kind.GAUGE,
    "Sum over images of the bytes each shares with other images: layer reuse.",
    ("host",), DOCKER_ENGINE)
DOCKER_LAYERS_BYTES = _spec(
    "docker_layers_bytes", Kind.GAUGE,
    "Disk used by all image layers, each layer counted once.",
    ("host",), DOCKER_ENGINE)
DOCKER_EVENTS = _spec(
    "docker_events_total", Kind.COUNTER,
    "Image and builder events from the engine's event stream (pull, push, delete, prune...).",
    ("host", "type", "action"), DOCKER_ENGINE)


# --- application (in-process) caches ----------------------------------------------------------
APP = "app"
CACHE_EFFECTIVE_HITS = _spec(
    "cache_effective_hits_total", Kind.COUNTER,
    "Multi-level caches: lookups served by this level or a level behind it (L1 hits + L2 hits"
    " on L1 misses); effective hit ratio = this / cachewatch_cache_lookups_total of this level.",
    ("layer", "cache"), APP)
APP_CACHE_LOADS = _spec(
    "app_cache_loads_total", Kind.COUNTER,
    "Values loaded into the cache after a miss, by result (success, failure).",
    ("cache", "result"), APP)
APP_CACHE_LOAD_SECONDS = _spec(
    "app_cache_load_seconds_total", Kind.COUNTER,
    "Time spent loading values (Caffeine totalLoadTime); per load = this / loads.",
    ("cache",), APP)
APP_CACHE_EVICTION_WEIGHT = _spec(
    "app_cache_eviction_weight_total", Kind.COUNTER,
    "Weight of evicted entries (Caffeine evictionWeight).",
    ("cache",), APP)
APP_CACHE_PUTS = _spec(
    "app_cache_puts_total", Kind.COUNTER,
    "Entries put into the cache (Micrometer cache_puts).",
    ("cache",), APP)
APP_CACHE_RESETS = _spec(
    "app_cache_resets_total", Kind.COUNTER,
    "Times an instance's counters went backwards (a restart), handled as a reset.",
    ("cache",), APP)
APP_CACHE_INSTANCES = _spec(
    "app_cache_instances", Kind.GAUGE,
    "Instances reporting this cache now (pushed within app.instance_ttl).",
    ("cache",), APP)
APP_CACHE_LAST_PUSH = _spec(
    "app_cache_last_push_timestamp_seconds", Kind.GAUGE,
    "When each live instance last pushed; the series goes when the instance expires.",
    ("app_instance",), APP)
APP_CACHE_PARENT = _spec(
    "app_cache_parent_info", Kind.INFO,
    "Multi-level caches: the level behind this cache (L1 -> L2).",
    ("cache", "parent", "parent_layer"), APP)
APP_PUSH_REJECTED = _spec(
    "app_push_rejected_total", Kind.COUNTER,
    "Pushes or caches refused, by reason (auth, too_large, malformed, cache_cap, instance_cap).",
    ("reason",), APP)


# --- registry ---------------------------------------------------------------------------------
REGISTRY = "registry"
REGISTRY_IMAGE_PULLS = _spec(
    "registry_image_pulls_total", Kind.COUNTER,
    "Image pulls: GET of a manifest or index (HEAD checks and blob fetches are not image pulls).",
    ("registry", "repository", "tag"), REGISTRY)
REGISTRY_IMAGE_PUSHES = _spec(
    "registry_image_pushes_total", Kind.COUNTER,
    "Manifests or indexes pushed.",
    ("registry", "repository", "tag"), REGISTRY)
REGISTRY_BLOB_PULLS = _spec(
    "registry_blob_pulls_total", Kind.COUNTER,
    "Blobs (layers, configs) served with GET.",
    ("registry", "repository"), REGISTRY)
REGISTRY_PULLED_BYTES = _spec(
    "registry_pulled_bytes_total", Kind.COUNTER,
    "Bytes of blobs served with GET.",
    ("registry", "repository"), REGISTRY)
REGISTRY_BLOB_PUSHES = _spec(
    "registry_blob_pushes_total", Kind.COUNTER,
    "Blobs uploaded.",
    ("registry", "repository"), REGISTRY)
REGISTRY_PUSHED_BYTES = _spec(
    "registry_pushed_bytes_total", Kind.COUNTER,
    "Bytes of blobs uploaded.",
    ("registry", "repository"), REGISTRY)
REGISTRY_BLOB_MOUNTS = _spec(
    "registry_blob_mounts_total", Kind.COUNTER,
    "Blobs mounted from another repository instead of uploaded: layer reuse.",
    ("registry", "repository"), REGISTRY)
REGISTRY_HEAD_CHECKS = _spec(
    "registry_head_requests_total", Kind.COUNTER,
    "HEAD checks of manifests and blobs (existence checks, not pulls).",
    ("registry", "repository"), REGISTRY)
REGISTRY_DELETES = _spec(
    "registry_deletes_total", Kind.COUNTER,
    "Manifests, tags or blobs deleted.",
    ("registry", "repository"), REGISTRY)
REGISTRY_EVENTS = _spec(
    "registry_events_total", Kind.COUNTER,
    "Notification events received and counted, by source (distribution, harbor) and action.",
    ("source", "action"), REGISTRY)
REGISTRY_DUPLICATES = _spec(
    "registry_duplicate_events_total", Kind.COUNTER,
    "Redelivered events dropped by id (delivery is at-least-once).",
    ("source",), REGISTRY)
REGISTRY_REJECTED = _spec(
    "registry_webhook_rejected_total", Kind.COUNTER,
    "Webhook requests or events refused, by reason (auth, too_large, malformed_json, bad_shape,"
    " unknown_action, too_many_resources).",
    ("source", "reason"), REGISTRY)
REGISTRY_PROXY_LOOKUPS = _spec(
    "registry_proxy_lookups_total", Kind.COUNTER,
    "Pull-through cache lookups by type (blob, manifest): miss = fetched from upstream, hit ="
    " served from its own storage.",
    ("registry", "type", "result"), REGISTRY)
REGISTRY_PROXY_REQUESTS = _spec(
    "registry_proxy_requests_total", Kind.COUNTER,
    "Requests the pull-through cache served, by type (its own Requests counter).",
    ("registry", "type"), REGISTRY)
REGISTRY_PROXY_UPSTREAM_BYTES = _spec(
    "registry_proxy_upstream_bytes_total", Kind.COUNTER,
    "Bytes the pull-through cache fetched from its upstream (its misses' cost).",
    ("registry", "type"), REGISTRY)
REGISTRY_NOTIFICATIONS_PENDING = _spec(
    "registry_notifications_pending", Kind.GAUGE,
    "Events queued in the registry for a notification endpoint, not yet delivered.",
    ("registry", "endpoint"), REGISTRY)
REGISTRY_NOTIFICATIONS = _spec(
    "registry_notifications_total", Kind.COUNTER,
    "Notification deliveries by the registry, by result (success, failure, error).",
    ("registry", "endpoint", "result"), REGISTRY)

# --- the exporter's own HTTP server -----------------------------------------------------------
HTTP_REFUSED = _spec(
    "http_refused_total", Kind.COUNTER,
    "Requests and connections the exporter's HTTP server refused, by reason (unauthorized,"
    " rate_limited, auth_busy, connection_cap, header_timeout, body_timeout, header_too_large,"
    " bad_request).",
    ("reason",), SELF)


# --- Redis command latency histogram (LATENCY HISTOGRAM) -----------------------------------------
# Redis 7 keeps a latency histogram per command (hdr_histogram, iterated in powers of two from
# 1024 ns), so its buckets end at 2^k * 1.024 microseconds. The family exports that fixed ladder,
# up to the one covering Redis' 1 s ceiling, for every command: the same `le` set on every scrape,
# as rate() and histogram_quantile() need.
REDIS_COMMAND_LATENCY_BUCKETS: tuple[float, ...] = tuple(2 ** (k + 10) / 1e9 for k in range(21))
REDIS_COMMAND_LATENCY = _spec(
    "redis_command_latency_seconds", Kind.HISTOGRAM,
    "Server-side latency per command from Redis 7 LATENCY HISTOGRAM (cumulative, power-of-two"
    " buckets, since the last stats reset: take rate() for a window); sum from INFO"
    " commandstats; the busiest commands by name, the rest folded into command=\"other\".",
    ("cache", "command"), REDIS)


# --- Dockerfile doctor: what busts the cache, what it costs, what the Dockerfiles show ----------
DOCKER_BUILD_CACHE_BUSTER_SECONDS = _spec(
    "docker_build_cache_buster_seconds_total", Kind.COUNTER,
    "Seconds re-running steps in builds whose first cache miss was this instruction: the build"
    " time lost after it (ingested logs only; the engine's history has no step times).",
    ("image", "instruction", "source"), DOCKER_BUILD)
DOCKERFILE_FINDINGS = _spec(
    "dockerfile_findings", Kind.GAUGE,
    "Findings of `cachewatch doctor` per rule in the image's Dockerfile (builds.dockerfiles);"
    " 0 for a rule with none.",
    ("image", "rule"), DOCKER_BUILD)


# --- durable state (self-monitoring) ------------------------------------------------------------
STATE = "state"
STATE_INFO = _spec(
    "state_info", Kind.INFO,
    "Where this process keeps its state (backend sqlite, redis or memory) and its replica id.",
    ("backend", "replica"), STATE)
STATE_UP = _spec(
    "state_up", Kind.GAUGE,
    "1 if the state store answered its last read, write or check; 0 while receivers answer 503.",
    (), STATE)
STATE_ERRORS = _spec(
    "state_errors_total", Kind.COUNTER,
    "Failed operations on the state store, by op (read, write, ping).",
    ("op",), STATE)
STATE_REFUSED = _spec(
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
# A sample's fields after name, labels and value (timestamp, exemplar...): all unset.
_UNSET = (None,) * (len(Sample._fields) - 3)


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
        return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind is Kind.SUMMARY:
        return SummaryMetricFamily(spec.name, spec.help, labels=spec.labels)
    return InfoMetricFamily(spec.family_name, spec.help, labels=spec.labels)


class Families:
    """Collects samples for several targets and yields one family per spec.

    A text exposition may name a family only once, so samples from every target (and every
    source) of the same family must be merged before encoding; this is that merge point for
    one collector.
    """

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def _get(self, spec: MetricSpec, labels: Mapping[str, str]) -> tuple[Metric, list[str]]:
        if tuple(labels) != spec.labels:
            raise ValueError(f"{spec.name} takes labels {spec.labels}, got {tuple(labels)}")
        fam = self._families.get(spec.name)
        if fam is None:
            fam = self._families[spec.name] = family(spec)
        return fam, [str(v) for v in labels.values()]

    def add(self, spec: MetricSpec, labels: Mapping[str, str], value: float) -> None:
        """Add one counter or gauge sample (or an info sample with value 1).

        The sample is made here, not by the family's ``add_metric`` (which turns the label
        dict into a list and back): this runs for every sample of every scrape.
        """
        if tuple(labels) != spec.labels:
            raise ValueError(f"{spec.name} takes labels {spec.labels}, got {tuple(labels)}")
        fam = self._families.get(spec.name)
        if fam is None:
            if spec.kind in (Kind.HISTOGRAM, Kind.SUMMARY):
                raise ValueError(f"{spec.name} is a {spec.kind}: use add_{spec.kind}")
            fam = self._families[spec.name] = family(spec)
        # The sample name is the spec's: counters end in _total and info in _info already.
        # tuple.__new__ skips the namedtuple's Python-level constructor (same object).
        fam.samples.append(tuple.__new__(Sample, (
            spec.name, {k: str(v) for k, v in labels.items()},
            1 if spec.kind is Kind.INFO else value, *_UNSET)))

    def add_histogram(
        self,
        spec: MetricSpec,
        labels: Mapping[str, str],
        buckets: Iterable[tuple[str, float]],
        sum_value: float,
    ) -> None:
        """Add one histogram child from cumulative ``(le, count)`` pairs, ``+Inf`` last.

        The samples ``HistogramMetricFamily.add_metric`` would make (buckets, then ``_count``
        and ``_sum`` unless an edge is negative), made here: a Redis target's command histogram
        is hundreds of them on every scrape.
        """
        fam, values = self._get(spec, labels)
        base = dict(zip(spec.labels, values, strict=True))
        pairs = list(buckets)
        new = tuple.__new__
        bucket = spec.name + "_bucket"
        fam.samples.extend([new(Sample, (bucket, {**base, "le": le}, count, *_UNSET))
                            for le, count in pairs])
        if float(pairs[0][0]) >= 0:
            fam.samples.append(new(Sample, (spec.name + "_count", base, pairs[-1][1], *_UNSET)))
            fam.samples.append(new(Sample, (spec.name + "_sum", dict(base), sum_value, *_UNSET)))

    def add_summary(
        self,
        spec: MetricSpec,
        labels: Mapping[str, str],
        count: float,
        sum_value: float,
        quantiles: Mapping[str, float],
    ) -> None:
        """Add one summary child with precomputed quantiles (``{"0.99": seconds, ...}``)."""
        fam, values = self._get(spec, labels)
        for quantile, value in quantiles.items():
            fam.samples.append(Sample(fam.name, {**dict(labels), "quantile": quantile}, value))
        fam.add_metric(values, count, sum_value)

    def extend(self, metrics: Iterable[Metric]) -> None:
        """Merge already-built families (another target's, or a prometheus_client metric's).

        The first family of a name is copied, never adopted, so merging more samples into it
        cannot change a family that another scrape is still holding.
        """
        for metric in metrics:
            fam = self._families.get(metric.name)
            if fam is None:
                self._families[metric.name] = _copy(metric, list(metric.samples))
            else:
                fam.samples.extend(metric.samples)

    def __iter__(self) -> Iterator[Metric]:
        """Families with at least one sample: an empty family is only noise in the output."""
        return (f for f in self._families.values() if f.samples)


def markdown_table(specs: Iterable[MetricSpec] | None = None) -> str:
    """The README's metric reference, generated so it cannot drift from the code."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in specs if specs is not None else SPECS.values():
        labels = ", ".join(f"`{label}`" for label in spec.labels)
        rows.append(f"| `{spec.name}` | {spec.kind.value} | {labels} | {spec.help} |")
    return "\n".join(rows) + "\n"

