"""The registry source's part of the metric contract: notifications (pulls, pushes, mounts,
per repository) and the pull-through cache's lookups.

The core families (``cachewatch.metrics.contract``) are re-exported here, so a module of this
source reads one contract: ``contract.CACHE_LOOKUPS`` and its own families alike.
"""

from __future__ import annotations

from ...metrics.contract import *  # noqa: F403 - the core families, read through this module
from ...metrics.contract import Kind, declare

# The ``layer`` label value this source's lookups and latency carry.
LAYER = "registry"

REGISTRY = "registry"
REGISTRY_IMAGE_PULLS = declare(
    "registry_image_pulls_total", Kind.COUNTER,
    "Image pulls: GET of a manifest or index (HEAD checks and blob fetches are not image pulls).",
    ("registry", "repository", "tag"), REGISTRY)
REGISTRY_IMAGE_PUSHES = declare(
    "registry_image_pushes_total", Kind.COUNTER,
    "Manifests or indexes pushed.",
    ("registry", "repository", "tag"), REGISTRY)
REGISTRY_BLOB_PULLS = declare(
    "registry_blob_pulls_total", Kind.COUNTER,
    "Blobs (layers, configs) served with GET.",
    ("registry", "repository"), REGISTRY)
REGISTRY_PULLED_BYTES = declare(
    "registry_pulled_bytes_total", Kind.COUNTER,
    "Bytes of blobs served with GET.",
    ("registry", "repository"), REGISTRY)
REGISTRY_BLOB_PUSHES = declare(
    "registry_blob_pushes_total", Kind.COUNTER,
    "Blobs uploaded.",
    ("registry", "repository"), REGISTRY)
REGISTRY_PUSHED_BYTES = declare(
    "registry_pushed_bytes_total", Kind.COUNTER,
    "Bytes of blobs uploaded.",
    ("registry", "repository"), REGISTRY)
REGISTRY_BLOB_MOUNTS = declare(
    "registry_blob_mounts_total", Kind.COUNTER,
    "Blobs mounted from another repository instead of uploaded: layer reuse.",
    ("registry", "repository"), REGISTRY)
REGISTRY_HEAD_CHECKS = declare(
    "registry_head_requests_total", Kind.COUNTER,
    "HEAD checks of manifests and blobs (existence checks, not pulls).",
    ("registry", "repository"), REGISTRY)
REGISTRY_DELETES = declare(
    "registry_deletes_total", Kind.COUNTER,
    "Manifests, tags or blobs deleted.",
    ("registry", "repository"), REGISTRY)
REGISTRY_EVENTS = declare(
    "registry_events_total", Kind.COUNTER,
    "Notification events received and counted, by source (distribution, harbor) and action.",
    ("source", "action"), REGISTRY)
REGISTRY_DUPLICATES = declare(
    "registry_duplicate_events_total", Kind.COUNTER,
    "Redelivered events dropped by id (delivery is at-least-once).",
    ("source",), REGISTRY)
REGISTRY_REJECTED = declare(
    "registry_webhook_rejected_total", Kind.COUNTER,
    "Webhook requests or events refused, by reason (auth, too_large, malformed_json, bad_shape,"
    " unknown_action, too_many_resources).",
    ("source", "reason"), REGISTRY)
REGISTRY_PROXY_LOOKUPS = declare(
    "registry_proxy_lookups_total", Kind.COUNTER,
    "Pull-through cache lookups by type (blob, manifest): miss = fetched from upstream, hit ="
    " served from its own storage.",
    ("registry", "type", "result"), REGISTRY)
REGISTRY_PROXY_REQUESTS = declare(
    "registry_proxy_requests_total", Kind.COUNTER,
    "Requests the pull-through cache served, by type (its own Requests counter).",
    ("registry", "type"), REGISTRY)
REGISTRY_PROXY_UPSTREAM_BYTES = declare(
    "registry_proxy_upstream_bytes_total", Kind.COUNTER,
    "Bytes the pull-through cache fetched from its upstream (its misses' cost).",
    ("registry", "type"), REGISTRY)
REGISTRY_NOTIFICATIONS_PENDING = declare(
    "registry_notifications_pending", Kind.GAUGE,
    "Events queued in the registry for a notification endpoint, not yet delivered.",
    ("registry", "endpoint"), REGISTRY)
REGISTRY_NOTIFICATIONS = declare(
    "registry_notifications_total", Kind.COUNTER,
    "Notification deliveries by the registry, by result (success, failure, error).",
    ("registry", "endpoint", "result"), REGISTRY)
# Seconds: Harbor replicates to edge sites every half hour or so; an execution takes seconds
# to hours.
REPLICATION_DURATION_BUCKETS: tuple[float, ...] = (
    10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)
REGISTRY_REPLICATION_EXECUTIONS = declare(
    "registry_replication_executions_total", Kind.COUNTER,
    "Harbor replication executions counted once, when they end, by final status (succeeded,"
    " failed, stopped), destination registry and trigger (manual, scheduled, event_based).",
    ("registry", "destination", "trigger", "status"), REGISTRY)
REGISTRY_REPLICATION_ARTIFACTS = declare(
    "registry_replication_artifacts_total", Kind.COUNTER,
    "Artifacts Harbor replicated, each counted once per execution, by result (succeeded,"
    " failed, stopped).",
    ("registry", "destination", "result"), REGISTRY)
REGISTRY_REPLICATION_DURATION = declare(
    "registry_replication_duration_seconds", Kind.HISTOGRAM,
    "Duration of finished replication executions, start to end (from Harbor's API).",
    ("registry", "destination"), REGISTRY)
REGISTRY_REPLICATION_LAST_SUCCESS = declare(
    "registry_replication_last_success_timestamp_seconds", Kind.GAUGE,
    "When a replication to this destination last succeeded (Unix seconds).",
    ("registry", "destination"), REGISTRY)
