"""The Docker source's part of the metric contract: builds (ingested logs, the engine's
history), the engine's disk usage and events, and what the Dockerfile doctor finds.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import Kind, declare

# The ``layer`` label value this source's lookups and latency carry.
LAYER = "docker_build"

DOCKER_BUILD = "docker_build"
BUILD_DURATION_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
DOCKER_BUILDS = declare(
    "docker_builds_total", Kind.COUNTER,
    "Builds by outcome (success, failed, cancelled); source: log (ingested), engine (image"
    " history) or buildkit (the daemon's build history).",
    ("image", "target", "status", "source"), DOCKER_BUILD)
DOCKER_BUILD_DURATION = declare(
    "docker_build_duration_seconds", Kind.HISTOGRAM,
    "Wall-clock duration of ingested builds.",
    ("image", "target"), DOCKER_BUILD)
DOCKER_BUILD_STEPS = declare(
    "docker_build_steps_total", Kind.COUNTER,
    "Cacheable build steps by result: hit (CACHED) or miss (executed); per image and target.",
    ("image", "target", "result", "source"), DOCKER_BUILD)
DOCKER_BUILD_STEP_SECONDS = declare(
    "docker_build_step_seconds_total", Kind.COUNTER,
    "Seconds spent in cacheable steps, executed versus served from cache.",
    ("image", "target", "result"), DOCKER_BUILD)
DOCKER_BUILD_REBUILD_SECONDS = declare(
    "docker_build_rebuild_seconds_total", Kind.COUNTER,
    "Seconds spent re-running steps in builds that had a usable cache: time lost to busted layers.",
    ("image", "target"), DOCKER_BUILD)
DOCKER_BUILD_CACHE_BUSTERS = declare(
    "docker_build_cache_busters_total", Kind.COUNTER,
    "Builds whose first cache miss (after a hit) was this instruction, normalised.",
    ("image", "instruction", "source"), DOCKER_BUILD)
BUILD_INGEST_REJECTED = declare(
    "build_ingest_rejected_total", Kind.COUNTER,
    "Build submissions refused, by reason (auth, too_large, malformed, duplicate, no_build: a"
    " log that shows no docker build).",
    ("reason",), DOCKER_BUILD)
DOCKER_ENGINE = "docker_engine"
# Cumulative over `le`, like histogram buckets, but a snapshot: how much of the cache was used
# recently. A cache whose bytes all sit in the oldest buckets is bloated; one with nothing older
# than an hour is thrashing (pruned or evicted before it is reused).
BUILD_CACHE_AGE_BUCKETS: tuple[float, ...] = (
    3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0,
    90 * 86400.0)
DOCKER_BUILD_CACHE_BYTES = declare(
    "docker_build_cache_bytes", Kind.GAUGE,
    "Build cache size by record type, in use and shared (GET /system/df).",
    ("host", "type", "in_use", "shared"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_RECORDS = declare(
    "docker_build_cache_records", Kind.GAUGE,
    "Build cache records by type, in use and shared.",
    ("host", "type", "in_use", "shared"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_RECLAIMABLE = declare(
    "docker_build_cache_reclaimable_bytes", Kind.GAUGE,
    "Build cache bytes a prune could free, as `docker system df` counts them.",
    ("host",), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_USAGE = declare(
    "docker_build_cache_uses", Kind.GAUGE,
    "Sum of build cache records' usage counts: how often cached results were reused.",
    ("host",), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_IDLE_BYTES = declare(
    "docker_build_cache_used_within_bytes", Kind.GAUGE,
    "Build cache bytes last used at most `within` seconds ago (cumulative; within=+Inf is all "
    "of it). Not `le`: promtool keeps that label for histograms.",
    ("host", "within"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_IDLE_RECORDS = declare(
    "docker_build_cache_used_within_records", Kind.GAUGE,
    "Build cache records last used at most `within` seconds ago (cumulative; within=+Inf is "
    "all).",
    ("host", "within"), DOCKER_ENGINE)
DOCKER_IMAGES = declare(
    "docker_images", Kind.GAUGE,
    "Images on the engine; dangling ones have no tag.",
    ("host", "dangling"), DOCKER_ENGINE)
DOCKER_IMAGES_BYTES = declare(
    "docker_images_bytes", Kind.GAUGE,
    "Sum of image sizes, each counted whole (shared layers counted once per image).",
    ("host",), DOCKER_ENGINE)
DOCKER_IMAGES_SHARED_BYTES = declare(
    "docker_images_shared_bytes", Kind.GAUGE,
    "Sum over images of the bytes each shares with other images: layer reuse.",
    ("host",), DOCKER_ENGINE)
DOCKER_LAYERS_BYTES = declare(
    "docker_layers_bytes", Kind.GAUGE,
    "Disk used by all image layers, each layer counted once.",
    ("host",), DOCKER_ENGINE)
DOCKER_EVENTS = declare(
    "docker_events_total", Kind.COUNTER,
    "Image and builder events from the engine's event stream (pull, push, delete, prune...).",
    ("host", "type", "action"), DOCKER_ENGINE)
DOCKER_BUILD_CACHE_BUSTER_SECONDS = declare(
    "docker_build_cache_buster_seconds_total", Kind.COUNTER,
    "Seconds re-running steps in builds whose first cache miss was this instruction: the build"
    " time lost after it (ingested logs only; the engine's history has no step times).",
    ("image", "instruction", "source"), DOCKER_BUILD)
DOCKERFILE_FINDINGS = declare(
    "dockerfile_findings", Kind.GAUGE,
    "Findings of `cachewatch doctor` per rule in the image's Dockerfile (builds.dockerfiles);"
    " 0 for a rule with none.",
    ("image", "rule"), DOCKER_BUILD)
DOCKER_PULL_LAYERS = declare(
    "docker_pull_layers_total", Kind.COUNTER,
    "Layers of images pulled, by result: reused (already on the node before the pull) or"
    " fetched (downloaded). From the engine's pull events.",
    ("host", "image", "result"), DOCKER_ENGINE)
DOCKER_PULL_LAYER_BYTES = declare(
    "docker_pull_layer_bytes_total", Kind.COUNTER,
    "Uncompressed bytes of the layers of images pulled (the size the engine reports, as"
    " `docker history` shows it), by result: reused or fetched.",
    ("host", "image", "result"), DOCKER_ENGINE)
