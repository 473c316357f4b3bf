"""The registry webhooks in the OpenAPI document (``/docs``).

They are raw ASGI endpoints served ahead of the framework (``events.fast_routes``), so FastAPI
never sees them; these path items describe them: what Distribution and Harbor send, the
``registry`` query parameter, the bearer token and every answer.
"""

from __future__ import annotations

from typing import Any

_REGISTRY = {"name": "registry", "in": "query", "required": False,
             "description": "The `registry` label of what this request counts (default: the "
             "event's `source.addr` or `request.host`; `harbor` for Harbor).",
             "schema": {"type": "string", "maxLength": 128}}
_ANSWERS: dict[str, Any] = {
    "401": {"description": "Missing or wrong bearer token (`registry.token`)."},
    "405": {"description": "Only POST is accepted."},
    "413": {"description": "Body over `registry.max_body_bytes`."},
}
_DISTRIBUTION_EVENT = {
    "type": "object",
    "required": ["id", "action", "target"],
    "properties": {
        "id": {"type": "string", "description": "De-duplication key (delivery is at least "
                                                "once)."},
        "timestamp": {"type": "string", "format": "date-time"},
        "action": {"type": "string", "enum": ["push", "pull", "mount", "delete"]},
        "target": {"type": "object", "properties": {
            "mediaType": {"type": "string"}, "size": {"type": "integer"},
            "digest": {"type": "string"}, "repository": {"type": "string"},
            "tag": {"type": "string"}, "url": {"type": "string"}}},
        "request": {"type": "object", "properties": {
            "method": {"type": "string", "description": "GET is a pull, HEAD an existence "
                                                        "check."},
            "host": {"type": "string"}, "addr": {"type": "string"},
            "useragent": {"type": "string"}}},
    },
}
_HARBOR_DATA = {
    "type": "object",
    "properties": {
        "resources": {"type": "array", "items": {"type": "object", "properties": {
            "digest": {"type": "string"}, "tag": {"type": "string"},
            "resource_url": {"type": "string"}}}},
        "repository": {"type": "object", "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"},
            "repo_full_name": {"type": "string"}}},
    },
}


def paths() -> dict[str, Any]:
    """OpenAPI path items for ``/webhooks/registry`` and ``/webhooks/harbor``."""
    return {"/webhooks/registry": {"post": _distribution()},
            "/webhooks/harbor": {"post": _harbor()}}


def _distribution() -> dict[str, Any]:
    """The Distribution notifications receiver's operation."""
    return {
        "tags": ["registry"],
        "summary": "Receive Distribution registry notifications",
        "description": "Point the registry's `notifications.endpoints` here. Image pulls "
        "(manifest GETs), blob pulls and bytes, pushes, mounts, HEAD checks and deletes are "
        "counted per repository; events are de-duplicated on `id`. An envelope with some "
        "bad events is acknowledged with the bad ones listed; one that can never be counted "
        "is refused (400), or acknowledged with `retry: false` when it comes with the "
        "registry's own media type (the registry retries any non-2xx forever).",
        "parameters": [_REGISTRY],
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {
            media: {"schema": {"type": "object", "required": ["events"], "properties": {
                "events": {"type": "array", "items": _DISTRIBUTION_EVENT}}}}
            for media in ("application/vnd.docker.distribution.events.v1+json",
                          "application/vnd.docker.distribution.events.v2+json",
                          "application/json")}},
        "responses": {
            "200": {"description": "Counted: `accepted`, `duplicates`, `rejected` (with "
                    "the reason of each)."},
            "202": {"description": "Nothing countable, acknowledged so the registry does "
                    "not retry it (`retry: false`)."},
            "400": {"description": "Not JSON, or no `events` list, or no event could be "
                    "counted."},
            **_ANSWERS,
        },
    }


def _harbor() -> dict[str, Any]:
    """The Harbor webhook receiver's operation."""
    return {
        "tags": ["registry"],
        "summary": "Receive Harbor webhooks (Default or CloudEvents payloads)",
        "description": "Add a Harbor webhook for artifact pushed, pulled and deleted, and "
        "replication status changed, pointing here. CloudEvents are de-duplicated on `id`; "
        "Default payloads carry no id, so each one is counted (replication tasks are counted "
        "once per execution and artifact whatever the format). Other event types are "
        "accepted and ignored.",
        "parameters": [_REGISTRY],
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [
                {"title": "Default", "type": "object", "required": ["type", "event_data"],
                 "properties": {"type": {"type": "string", "example": "PULL_ARTIFACT"},
                                "occur_at": {"type": "integer"},
                                "operator": {"type": "string"},
                                "event_data": _HARBOR_DATA}},
                {"title": "CloudEvents", "type": "object",
                 "required": ["specversion", "id", "type", "data"],
                 "properties": {"specversion": {"type": "string"},
                                "id": {"type": "string"},
                                "type": {"type": "string",
                                         "example": "harbor.artifact.pulled"},
                                "data": _HARBOR_DATA}},
            ]}}}},
        "responses": {
            "200": {"description": "`accepted` (0 for a duplicate or an ignored type) and "
                    "the `action`; for a replication event, `counted`: the artifacts and "
                    "executions it counted for the first time."},
            "400": {"description": "Not JSON, or not a Harbor event."},
            **_ANSWERS,
        },
    }
