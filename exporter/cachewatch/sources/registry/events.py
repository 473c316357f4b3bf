"""Registry notifications in, pulls and pushes per repository out.

Distribution (the ``registry`` / ``docker-registry`` server) posts ``{"events": [...]}``
envelopes, at least once and in no set order; Harbor posts one event per request, in its
``Default`` or ``CloudEvents`` format. Both feed the same families.

Reading them naively double-counts: a manifest ``HEAD`` is reported as a ``pull``, and every
blob served is a ``pull`` of its own. So an *image pull* here is ``action=pull`` of a manifest or
index media type with ``request.method=GET``; blob GETs are counted (with their bytes) apart,
HEAD checks apart again. Events are de-duplicated on their ``id``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from time import monotonic as _monotonic
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

from ...metrics.cached import CachedFamilies
from ...metrics.cardinality import OTHER, LabelCap
from ...metrics.contract import Families
from ...metrics.labels import id_bytes
from ...receiving import (
    RECEIVER_REFUSALS,
    RawReceiver,
    Receive,
    Scope,
    Send,
    refused,
    send_encoded,
)
from ...runtime import Runtime
from ...source import Source
from ...state import Change, Counts, Ledger, StateError
from . import contract, replication
from .settings import RegistrySettings

MANIFEST_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})
ACTIONS = ("pull", "push", "mount", "delete")
HARBOR_TYPES = {
    "PULL_ARTIFACT": "pull", "harbor.artifact.pulled": "pull",
    "PUSH_ARTIFACT": "push", "harbor.artifact.pushed": "push",
    "DELETE_ARTIFACT": "delete", "harbor.artifact.deleted": "delete",
}
REASONS = ("auth", "too_large", "malformed_json", "bad_shape", "unknown_action",
           "too_many_resources")
MAX_ID = 256  # event ids and names from outside are bounded: memory and label size stay small
MAX_NAME = 255
MAX_ERROR = 200  # characters of a parser's message quoted back (it may quote the input)
ADMITTED_FOR = 60.0  # seconds a pair of labels the caps admitted is remembered
ADMITTED_AT_MOST = 4096  # pairs remembered at most
REGISTRY_MEDIA = b"application/vnd.docker.distribution.events"


class BadEvent(ValueError):
    """An event that can never be counted; ``reason`` is its counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message[:MAX_ERROR])  # it may quote a field of any length
        self.reason = reason


class RegistryEventCollector(Source):
    """Counts registry events per repository; serves the two webhook endpoints.

    Counts and de-duplication ids live in the runtime's state store: a request is answered 2xx
    only once its events are stored, and a redelivery after a restart is still a duplicate.
    """

    name = "registry"

    def __init__(self, settings: RegistrySettings, ledger: Ledger,
                 poller: Callable[[replication.Replication], Any] | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self._repositories = LabelCap(settings.max_repositories)
        self._registries = LabelCap(settings.max_registries)
        self._tags = LabelCap(settings.max_repositories)
        # (registry, repository) -> their labels, as the caps admitted them lately
        self._admitted: dict[tuple[str, str], tuple[str, str]] = {}
        self._admitted_until = 0.0
        self.replication = replication.Replication(self._registries, settings.max_registries)
        positions = {name: index for index, name in enumerate(REPOSITORY_LABELS)}
        for key, _ in ledger.items():  # restored series keep their own labels after a restart
            if key[0] in _BY_REPOSITORY:
                self._registries(key[1 + positions["registry"]])
                self._repositories(key[1 + positions["repository"]])
            self.replication.restore(key)
        self.poller = poller(self.replication) if poller is not None else None
        self._cached = CachedFamilies()  # made again only when the ledger (or polls) moved
        self._zero: Counts = {}
        for source in ("distribution", "harbor"):
            for reason in REASONS:
                self._zero[(contract.REGISTRY_REJECTED.name, source, reason)] = 0.0
            self._zero[(contract.REGISTRY_DUPLICATES.name, source)] = 0.0

    def _labels(self, registry: str, repository: str) -> tuple[str, str]:
        """The capped labels of a registry and a repository. A pair the caps admitted in the
        last ``ADMITTED_FOR`` seconds is answered from memory: a sender writes to the same few
        repositories, and the two cap lookups (each makes its value safe) were a third of an
        event's validation. The caps answer the same for a value they admitted (they forget
        one only after a day unseen) and still see each pair at least once a minute; a value
        they folded into ``other`` is never remembered, so every fold is counted."""
        now = _monotonic()
        if now >= self._admitted_until:
            self._admitted.clear()
            self._admitted_until = now + ADMITTED_FOR
        pair = self._admitted.get((registry, repository))
        if pair is None:
            pair = self._registries(registry), self._repositories(repository)
            if OTHER not in pair and len(self._admitted) < ADMITTED_AT_MOST:
                self._admitted[(registry, repository)] = pair
        return pair

    def _tag(self, tag: Any) -> str:
        return self._tags(str(tag)) if self.settings.tag_label and tag else ""

    def distribution_change(self, event: Any, registry: str | None) -> Change:
        """What one Distribution event counts, de-duplicated on its id. Raises BadEvent.

        The hot path of every webhook: each field is read once, and only where it counts."""
        if not isinstance(event, dict):
            raise BadEvent("bad_shape", "an event must be a JSON object")
        get = event.get
        event_id, action, target = get("id"), get("action"), get("target")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
            raise BadEvent("bad_shape", f"event id missing or over {MAX_ID} characters")
        if not isinstance(action, str):
            raise BadEvent("bad_shape", f"event {event_id} has no action")
        if action not in ACTIONS:
            raise BadEvent("unknown_action", f"unknown action {action!r}; expected one of "
                                             f"{', '.join(ACTIONS)}")
        repository = target.get("repository") if isinstance(target, dict) else None
        if not isinstance(repository, str) or not 0 < len(repository) <= MAX_NAME:
            raise BadEvent("bad_shape", f"event {event_id}: target.repository missing or over "
                                        f"{MAX_NAME} characters")
        request = get("request")
        if not isinstance(request, dict):
            request = _NONE
        size = target.get("size")
        if type(size) is not int:  # decoded JSON: an int is exactly int (bool is not)
            size = target.get("length")
            size = size if type(size) is int else 0
        if not 0 <= size < 2**53:
            raise BadEvent("bad_shape", f"event {event_id}: target.size {size} is not a size")
        if not registry:
            source = get("source")
            registry = str((source.get("addr") if isinstance(source, dict) else None)
                           or request.get("host") or "unknown")
        reg, repo = self._labels(registry[:MAX_NAME], repository)
        counts: Counts = {_EVENT_KEYS[action]: 1.0}
        if action == "pull":
            if str(request.get("method") or "GET").upper() == "HEAD":
                counts[(HEAD_CHECKS, reg, repo)] = 1.0
            elif str(target.get("mediaType") or "") in MANIFEST_TYPES:
                counts[(IMAGE_PULLS, reg, repo, self._tag(target.get("tag")))] = 1.0
            else:
                counts[(BLOB_PULLS, reg, repo)] = 1.0
                counts[(PULLED_BYTES, reg, repo)] = float(size)
        elif action == "push":
            if str(target.get("mediaType") or "") in MANIFEST_TYPES:
                counts[(IMAGE_PUSHES, reg, repo, self._tag(target.get("tag")))] = 1.0
            else:
                counts[(BLOB_PUSHES, reg, repo)] = 1.0
                counts[(PUSHED_BYTES, reg, repo)] = float(size)
        elif action == "mount":
            counts[(BLOB_MOUNTS, reg, repo)] = 1.0
        else:
            counts[(DELETES, reg, repo)] = 1.0
        key = _blake2b(id_bytes(event_id), digest_size=16).digest()  # bounded size
        return Change(counts, key, _DUPLICATE_DISTRIBUTION)

    def harbor_change(self, payload: Any, registry: str | None) -> tuple[Change | None, str]:
        """What one Harbor event (Default or CloudEvents) counts; ``None`` for other types."""
        if not isinstance(payload, dict):
            raise BadEvent("bad_shape", "a Harbor event must be a JSON object")
        kind = payload.get("type")
        data = payload.get("data") if "specversion" in payload else payload.get("event_data")
        if not isinstance(kind, str):
            raise BadEvent("bad_shape", "Harbor event has no type")
        action = HARBOR_TYPES.get(kind)
        if action is None:
            return None, "ignored"  # scans, quotas, replication...: not pulls or pushes
        if not isinstance(data, dict) or not isinstance(data.get("repository"), dict):
            raise BadEvent("bad_shape", f"{kind}: event_data/data.repository is missing")
        repository = data["repository"].get("repo_full_name") or "/".join(
            str(p) for p in (data["repository"].get("namespace"), data["repository"].get("name"))
            if p)
        resources = data.get("resources") if isinstance(data.get("resources"), list) else []
        if len(resources) > self.settings.max_harbor_resources:
            raise BadEvent("too_many_resources",
                           f"{kind}: {len(resources)} resources in one event, over"
                           f" {self.settings.max_harbor_resources} (registry.max_harbor_resources)")
        if not repository:
            raise BadEvent("bad_shape", f"{kind}: repository has no repo_full_name")
        if len(str(repository)) > MAX_NAME:
            raise BadEvent("bad_shape", f"{kind}: repository name over {MAX_NAME} characters")
        # CloudEvents carry an id to de-duplicate on. The Default format has none, and two real
        # pulls of one tag in one second look the same, so Default events are all counted.
        event_id = payload.get("id") if "specversion" in payload else None
        key = hashlib.blake2b(b"harbor:" + id_bytes(str(event_id)), digest_size=16).digest() \
            if event_id else None
        reg, repo = self._labels(registry or "harbor", str(repository))
        counts: Counts = defaultdict(float)
        counts[(EVENTS, "harbor", action)] = 1.0
        for resource in resources or [{}]:
            tag = self._tag(resource.get("tag") if isinstance(resource, dict) else None)
            if action == "pull":
                counts[(contract.REGISTRY_IMAGE_PULLS.name, reg, repo, tag)] += 1
            elif action == "push":
                counts[(contract.REGISTRY_IMAGE_PUSHES.name, reg, repo, tag)] += 1
            else:
                counts[(contract.REGISTRY_DELETES.name, reg, repo)] += 1
        return Change(dict(counts), key, _DUPLICATE["harbor"]), action

    def reject(self, source: str, reason: str) -> None:
        """Count and log a refusal; nobody waits for it to be stored."""
        self.count_refusal(source, reason)
        refused(f"registry.{source}", reason)

    def count_refusal(self, source: str, reason: str) -> None:
        self.ledger.record_later([_rejection(source, reason)])

    def collect(self) -> Any:
        version: object = self.ledger.version
        if self.poller is not None:  # its errors are the health store's
            version = (version, self.poller.health.version)
        return iter(self._cached.get(version, self._families))

    def _families(self) -> Families:
        out = Families()
        items = {**self._zero, **dict(self.ledger.items())}.items()
        for key, value in items:
            if key[0] not in replication.KEYED:
                spec = contract.SPECS[key[0]]
                out.add(spec, dict(zip(spec.labels, key[1:], strict=True)), value)
        self.replication.families(items, out)
        if self.poller is not None:
            self.poller.add_to(out)
        return out

    def start(self) -> None:
        if self.poller is not None:
            self.poller.start()

    def close(self) -> None:
        if self.poller is not None:
            self.poller.close()

    # --- HTTP ---------------------------------------------------------------------------------
    def fast_routes(self) -> dict[str, Any]:
        """Raw ASGI endpoints ahead of the framework: a registry can send thousands of events
        a second, and routing, middleware and request objects would cost more than the
        counting (see benchmarks/webhook_throughput.py)."""
        return {"/webhooks/registry": _Webhook(self, "distribution"),
                "/webhooks/harbor": _Webhook(self, "harbor")}

    def openapi_paths(self) -> dict[str, Any]:
        from .openapi import paths

        return paths()

    def bearer_paths(self) -> tuple[str, ...]:
        return ("/webhooks/registry", "/webhooks/harbor") if self.settings.token else ()

    async def handle(self, source: str, raw: bytes, registry: str | None,
                     from_registry: bool = False) -> tuple[int, dict[str, Any]]:
        """One webhook request, authorised and read within the limit: ``(status, JSON body)``.

        A Distribution registry retries every non-2xx answer, forever and in order, so a
        body that can never be counted would stop its whole queue: a request that carries
        the registry's own media type gets 2xx for those (the problem is in the body and in
        the rejected counter). Other senders get the 400 that names the problem. A state store
        that cannot take the events gets 503: nothing was counted, the sender retries."""
        try:
            if source == "harbor":
                status, body = await self._harbor_request(raw, registry)
            else:
                status, body = await self._distribution(raw, registry)
        except StateError as exc:
            return 503, {"error": f"events not stored, retry: {exc}"}
        if from_registry and status == 400:
            return 202, {**body, "retry": False}
        return status, body

    def _malformed(self, source: str, exc: Exception) -> tuple[int, dict[str, Any]]:
        self.reject(source, "malformed_json")
        return 400, {"error": f"malformed JSON: {str(exc)[:MAX_ERROR]}"}

    async def _distribution(self, raw: bytes, registry: str | None
                            ) -> tuple[int, dict[str, Any]]:
        """One Distribution envelope: decoded, each event counted or rejected, stored. The
        hot path: decoding, checking and storing in one coroutine, not one per step."""
        envelope = _envelope()
        try:
            payload = envelope.read_small(raw, self.settings.max_events)
            if payload is envelope.UNDECIDED:
                payload = await envelope.read_envelope(raw, self.settings.max_events)
        except envelope.TooManyEvents as exc:
            self.reject("distribution", "too_large")
            return 413, {"error": f"{exc} (registry.max_events)"}
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return self._malformed("distribution", exc)
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            self.reject("distribution", "bad_shape")
            return 400, {"error": 'expected an envelope {"events": [...]}'}
        changes: list[Change] = []
        rejected: list[dict[str, Any]] = []
        change = self.distribution_change
        for index, event in enumerate(events):
            try:
                changes.append(change(event, registry))
            except BadEvent as exc:
                rejected.append({"index": index, "reason": exc.reason, "error": str(exc)})
        refusals = [_rejection("distribution", r["reason"]) for r in rejected] if rejected \
            else []  # no comprehension's frame for the common envelope with nothing rejected
        if not changes:
            self.ledger.record_later(refusals)
            accepted = 0
        else:  # the refusals are stored with the events: one commit
            outcome = await self.ledger.record([*changes, *refusals] if refusals else changes)
            accepted = outcome.applied[:len(changes)].count(True)
        duplicates = len(changes) - accepted
        body = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        if rejected:  # once a minute per reason, with how many were not logged
            RECEIVER_REFUSALS.refused(f"registry.events:{rejected[0]['reason']}",
                                      "registry events refused", refused=len(rejected),
                                      first=rejected[0]["error"])
        # The registry retries any non-2xx. Retrying an envelope that is wholly bad cannot
        # help and is refused (400); one with good events is acknowledged, the bad ones listed.
        return (400 if rejected and not accepted and not duplicates else 200), body

    async def _harbor_request(self, raw: bytes, registry: str | None
                              ) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return self._malformed("harbor", exc)
        return await self._harbor(payload, registry)

    async def _harbor(self, payload: Any, registry: str | None) -> tuple[int, dict[str, Any]]:
        if isinstance(payload, dict) and str(payload.get("type")) in replication.TYPES:
            return await self._replication(payload, registry)
        try:
            change, action = self.harbor_change(payload, registry)
        except BadEvent as exc:
            self.reject("harbor", exc.reason)
            return 400, {"error": str(exc)}
        if change is None:
            return 200, {"accepted": 0, "action": action}
        outcome = await self.ledger.record([change])
        return 200, {"accepted": int(outcome.applied[0]), "action": action}


    def replication_changes(self, payload: dict[str, Any], registry: str | None
                            ) -> tuple[list[Change], Any]:
        """What one replication webhook counts (``replication.Replication.from_webhook``),
        after the events counter, de-duplicated on a CloudEvents id. Raises BadEvent."""
        cloud = "specversion" in payload
        when = replication.timestamp(payload.get("time") if cloud else payload.get("occur_at"))
        try:
            changes, update = self.replication.from_webhook(
                payload.get("data") if cloud else payload.get("event_data"),
                when or time.time(), (registry or "harbor")[:MAX_NAME],
                executions=self.poller is None)
        except ValueError as exc:
            raise BadEvent("bad_shape", f"{payload.get('type')}: {exc}") from exc
        if self.poller is not None:
            changes = []  # the API counts executions and artifacts; the webhook only dates
        event_id = payload.get("id") if cloud else None
        key = hashlib.blake2b(b"harbor:" + id_bytes(str(event_id)), digest_size=16).digest() \
            if event_id else None
        return [Change({(EVENTS, "harbor", "replication"): 1.0}, key, _DUPLICATE["harbor"]),
                *changes], update

    async def _replication(self, payload: dict[str, Any], registry: str | None
                           ) -> tuple[int, dict[str, Any]]:
        try:
            changes, update = self.replication_changes(payload, registry)
        except BadEvent as exc:
            self.reject("harbor", exc.reason)
            return 400, {"error": str(exc)}
        outcome = await self.ledger.record(changes, update)
        return 200, {"accepted": int(outcome.applied[0]), "action": "replication",
                     "counted": sum(outcome.applied[1:])}


class _Webhook:
    """The ASGI endpoint: the receiver kit reads the body (authorised, bounded), the collector
    counts it, the answer is JSON."""

    def __init__(self, collector: RegistryEventCollector, source: str) -> None:
        self.collector = collector
        self.source = source
        self.receiver = RawReceiver(
            "registry", collector.settings.token, collector.settings.max_body_bytes,
            lambda reason: collector.count_refusal(source, reason), f"registry.{source}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        raw = await self.receiver.body(scope, receive, send, headers)
        if raw is None:
            return  # answered (405, 401, 413), or the sender went away
        query = scope.get("query_string")
        registry = parse_qs(query.decode("latin-1")).get("registry") if query else None
        from_registry = self.source == "distribution" and headers.get(
            b"content-type", b"").startswith(REGISTRY_MEDIA)
        status, body = await self.collector.handle(self.source, raw,
                                                   registry[0][:MAX_NAME] if registry else None,
                                                   from_registry)
        await send_encoded(send, status, answer(status, body),
                           _RETRY if status == 503 else None)


def answer(status: int, body: dict[str, Any]) -> bytes:
    """A webhook's JSON answer, encoded; the common one (nothing rejected) from bytes kept."""
    if status == 200 and body.get("rejected") == [] and len(body) == 3:
        return _accepted(body["accepted"], body["duplicates"])
    return json.dumps(body).encode()


def _accepted(accepted: int, duplicates: int) -> bytes:
    """The answer to an envelope with nothing rejected, encoded once per pair of counts
    (encoding it took a twentieth of a webhook's own work)."""
    payload = _ACCEPTED.get((accepted, duplicates))
    if payload is None:
        if len(_ACCEPTED) >= 4096:
            _ACCEPTED.clear()
        payload = _ACCEPTED[(accepted, duplicates)] = json.dumps(
            {"accepted": accepted, "duplicates": duplicates, "rejected": []}).encode()
    return payload


_ACCEPTED: dict[tuple[int, int], bytes] = {}
_RETRY = {"Retry-After": "1"}


@cache
def _envelope() -> ModuleType:
    """The envelope reader, imported with the first envelope, not at start-up (msgspec is
    0.6 MB a scrape-only exporter never needs), and once: an import statement on every
    request cost as much as decoding its envelope."""
    from . import envelope

    return envelope


def _rejection(source: str, reason: str) -> Change:
    return Change({(contract.REGISTRY_REJECTED.name, source, reason): 1.0})


EVENTS = contract.REGISTRY_EVENTS.name
REPOSITORY_LABELS = ("registry", "repository")
_BY_REPOSITORY = frozenset(spec.name for spec in contract.SPECS.values()
                           if spec.labels[:2] == REPOSITORY_LABELS)
_DUPLICATE = {source: {(contract.REGISTRY_DUPLICATES.name, source): 1.0}
              for source in ("distribution", "harbor")}
_DUPLICATE_DISTRIBUTION = _DUPLICATE["distribution"]
_EVENT_KEYS = {action: (EVENTS, "distribution", action) for action in ACTIONS}
_NONE: dict[str, Any] = {}  # an absent ``request``: read, never written
_blake2b = hashlib.blake2b
HEAD_CHECKS = contract.REGISTRY_HEAD_CHECKS.name
IMAGE_PULLS = contract.REGISTRY_IMAGE_PULLS.name
BLOB_PULLS = contract.REGISTRY_BLOB_PULLS.name
PULLED_BYTES = contract.REGISTRY_PULLED_BYTES.name
IMAGE_PUSHES = contract.REGISTRY_IMAGE_PUSHES.name
BLOB_PUSHES = contract.REGISTRY_BLOB_PUSHES.name
PUSHED_BYTES = contract.REGISTRY_PUSHED_BYTES.name
BLOB_MOUNTS = contract.REGISTRY_BLOB_MOUNTS.name
DELETES = contract.REGISTRY_DELETES.name


def build(section: RegistrySettings, runtime: Runtime) -> RegistryEventCollector:
    """The webhook receivers, counting into the runtime's state store, and the Harbor poller
    when ``harbor_url`` is set."""
    ledger = runtime.state.ledger("registry", section.dedup_window)
    poller = None
    if section.harbor_url:
        from .harbor import HarborPoller

        def poller(rep: replication.Replication) -> HarborPoller:
            return HarborPoller(section, rep, ledger, runtime.health)
    return RegistryEventCollector(section, ledger, poller)
