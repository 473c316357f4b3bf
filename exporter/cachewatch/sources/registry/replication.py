"""Harbor replication: executions, artifacts, durations and last success, counted once.

Two readers feed the same counters, through the state store (de-duplication ids and counts):

* ``REPLICATION`` webhooks (``harbor.replication.status.changed`` in CloudEvents). Harbor sends
  one per *task* status change (one task per artifact: Pending, Running, then Success, Error or
  Stopped), none when an execution ends, and carries ``execution_id`` / ``task_id`` from 2.13
  on. Tasks are grouped into executions by ``execution_id``, else by ``execution_timestamp``
  with the source and destination endpoints. Each artifact counts once per execution, with its
  first final status; an execution counts once, at its first task with a final status, with
  that status (the webhook never says when the last task ended): polling gives the execution's
  own final status and duration.
* ``GET /api/v2.0/replication/executions`` (``harbor.HarborPoller``): one record per execution,
  with its status, start and end times and task counts. When polling is on, it alone counts
  executions and artifacts, so nothing is counted twice; webhooks then only say when a
  replication last succeeded.

The webhook says ``Success``/``Error`` where the API says ``Succeed``/``Failed``: both become
``succeeded``/``failed`` (and ``stopped``). The last success is a maximum kept in one stored
record, so replicas sharing a store agree on it.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.utils import floatToGoString

from ...metrics.cardinality import LabelCap
from ...metrics.contract import Families
from ...metrics.labels import id_bytes
from ...state import Change, Counts, Key, Update
from . import contract

TYPES = frozenset({"REPLICATION", "harbor.replication.status.changed"})
FINAL = {"success": "succeeded", "succeed": "succeeded", "error": "failed",
         "failed": "failed", "stopped": "stopped"}
TRIGGERS = {"manual": "manual", "schedule": "scheduled", "scheduled": "scheduled",
            "event": "event_based", "event_based": "event_based"}
EXECUTIONS = contract.REGISTRY_REPLICATION_EXECUTIONS.name
ARTIFACTS = contract.REGISTRY_REPLICATION_ARTIFACTS.name
LAST_SUCCESS = contract.REGISTRY_REPLICATION_LAST_SUCCESS.name
DURATION = contract.REGISTRY_REPLICATION_DURATION.name
BUCKET, SUM = DURATION + "_bucket", DURATION + "_sum"
EDGES = (*(floatToGoString(b) for b in contract.REPLICATION_DURATION_BUCKETS), "+Inf")
# Series keyed by registry and destination first: their caps are restored from the store.
KEYED = frozenset({EXECUTIONS, ARTIFACTS, LAST_SUCCESS, BUCKET, SUM})
MAX_TRIGGERS = 8  # Harbor has three; anything else folds into `other` past this
_RECORD = "replication:last_success"


def final_status(text: Any) -> str | None:
    """``succeeded``, ``failed`` or ``stopped`` for a final status of either spelling; ``None``
    for one that is not final (``Running``, ``Pending``, ``InProgress``...)."""
    return FINAL.get(str(text or "").strip().lower())


def destination_name(resource: Any) -> str:
    """The destination registry's name, else its endpoint's host (a pull-mode replication's
    destination is the local Harbor, which has no name in the payload)."""
    if not isinstance(resource, dict):
        return "unknown"
    name = str(resource.get("registry_name") or "").strip()
    if name:
        return name
    endpoint = str(resource.get("endpoint") or "").strip()
    return urlsplit(endpoint).netloc or endpoint or "unknown"


def timestamp(value: Any) -> float | None:
    """Unix seconds from Harbor's epoch integers or RFC 3339 strings; ``None`` for none or
    Go's zero time (an execution still running has ``0001-01-01T00:00:00.000Z``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Replication:
    """The counting rules both readers share, with the caps of their labels."""

    def __init__(self, registries: LabelCap, max_destinations: int) -> None:
        self._registries = registries
        self._destinations = LabelCap(max_destinations)
        self._triggers = LabelCap(MAX_TRIGGERS)

    def restore(self, key: Key) -> None:
        """A stored series keeps its labels after a restart: admit them to the caps first."""
        if key[0] in KEYED:
            self._registries(key[1])
            self._destinations(key[2])
            if key[0] == EXECUTIONS:
                self._triggers(key[3])

    def labels(self, registry: str, destination: str) -> tuple[str, str]:
        return self._registries(registry), self._destinations(destination)

    def trigger(self, text: Any) -> str:
        raw = str(text or "").strip().lower()
        return self._triggers(TRIGGERS.get(raw, raw or "unknown"))

    def from_webhook(self, data: Any, occur_at: float, registry: str,
                     executions: bool) -> tuple[list[Change], Update | None]:
        """What one replication webhook counts: its artifact (once per execution, when its
        task ends), its execution (``executions``: once, at its first final task) and the
        last success. A ``Running`` or ``Pending`` task counts nothing. Raises ValueError."""
        rep = data.get("replication") if isinstance(data, dict) else None
        if not isinstance(rep, dict):
            raise ValueError("replication event without data.replication / event_data.replication")
        status = final_status(rep.get("job_status"))
        if status is None:
            return [], None
        reg, dest = self.labels(registry, destination_name(rep.get("dest_resource")))
        execution = _webhook_execution(rep, occur_at)
        listed = [a for key in ("successful_artifact", "failed_artifact")
                  if isinstance(rep.get(key), list) for a in rep[key] if isinstance(a, dict)]
        changes = []
        for artifact in listed or [{}]:
            task = rep.get("task_id") or artifact.get("name_tag") or occur_at
            changes.append(Change({(ARTIFACTS, reg, dest, status): 1.0},
                                  _once("artifact", registry, execution, str(task))))
        if executions:
            changes.append(Change({(EXECUTIONS, reg, dest, self.trigger(rep.get("trigger_type")),
                                    status): 1.0}, _once("execution", registry, execution)))
        update = last_success({(reg, dest): occur_at}) if status == "succeeded" else None
        return changes, update

    def from_api(self, execution: dict[str, Any], destination: str, registry: str
                 ) -> tuple[Change, float | None]:
        """What one finished execution from the API counts, once: the execution with its
        final status, its artifacts by result, its duration; and its end if it succeeded."""
        status = final_status(execution.get("status")) or "failed"
        reg, dest = self.labels(registry, destination)
        counts: Counts = {(EXECUTIONS, reg, dest, self.trigger(execution.get("trigger")),
                           status): 1.0}
        for field, result in (("succeed", "succeeded"), ("failed", "failed"),
                              ("stopped", "stopped")):
            value = execution.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                counts[(ARTIFACTS, reg, dest, result)] = float(value)
        start, end = timestamp(execution.get("start_time")), timestamp(execution.get("end_time"))
        if start is not None and end is not None:
            seconds = max(0.0, end - start)
            for edge in EDGES[bisect_left(contract.REPLICATION_DURATION_BUCKETS, seconds):]:
                counts[(BUCKET, reg, dest, edge)] = 1.0
            counts[(SUM, reg, dest)] = seconds
        change = Change(counts, _once("execution", registry, f"id:{execution.get('id')}"))
        return change, end if status == "succeeded" else None

    def families(self, items: Iterable[tuple[Key, float]], out: Families) -> None:
        """Add the replication series of the ledger's ``items`` to ``out``."""
        histograms: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for key, value in items:
            if key[0] == BUCKET:
                histograms[(key[1], key[2])][key[3]] = value
            elif key[0] == SUM:
                histograms[(key[1], key[2])]["sum"] = value
            elif key[0] in KEYED:
                spec = contract.SPECS[key[0]]
                out.add(spec, dict(zip(spec.labels, key[1:], strict=True)), value)
        for (reg, dest), values in sorted(histograms.items()):
            cumulative = [(edge, values.get(edge, 0.0)) for edge in EDGES]
            out.add_histogram(contract.REGISTRY_REPLICATION_DURATION,
                              {"registry": reg, "destination": dest}, cumulative,
                              values.get("sum", 0.0))


def last_success(times: dict[tuple[str, str], float]) -> Update:
    """Raise each (registry, destination)'s last success to ``times`` where later, in one
    stored record: the gauge's value is the sum of the raises, so it is the maximum."""

    def apply(old: Any) -> tuple[Any, Counts, Any]:
        record = dict(old) if isinstance(old, dict) else {}
        counts: Counts = {}
        for (reg, dest), when in times.items():
            slot = f"{reg}\x00{dest}"
            before = float(record.get(slot) or 0.0)
            if when > before:
                record[slot] = when
                counts[(LAST_SUCCESS, reg, dest)] = when - before
        return record, counts, None

    return Update(_RECORD, apply, keep_for=365 * 86400)


def _webhook_execution(rep: dict[str, Any], occur_at: float) -> str:
    """The execution a task event belongs to: its id (2.13+), else its start time with the
    source and destination; an older event with neither is an execution of its own."""
    if rep.get("execution_id"):
        return f"id:{rep['execution_id']}"
    endpoints = [str((rep.get(k) or {}).get("endpoint") or "") if isinstance(rep.get(k), dict)
                 else "" for k in ("src_resource", "dest_resource")]
    started = rep.get("execution_timestamp") or f"event-{occur_at}"
    return f"ts:{started}:{endpoints[0]}:{endpoints[1]}"


def _once(kind: str, registry: str, *parts: str) -> bytes:
    text = "\x00".join(("harbor-replication", kind, registry, *parts))
    return hashlib.blake2b(id_bytes(text), digest_size=16).digest()
