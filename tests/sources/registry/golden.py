"""The registry's golden scenario: a push, a manifest pull and a blob pull notified, then the
pull redelivered."""

from __future__ import annotations

import httpx

from support import Exporter, Golden


def _feed(exporter: Exporter) -> None:
    manifest = "application/vnd.docker.distribution.manifest.v2+json"
    events = [
        {"id": "e1", "action": "push", "target": {"mediaType": manifest, "size": 528,
         "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
         "request": {"method": "PUT", "host": "registry.local:5000"}},
        {"id": "e2", "action": "pull", "target": {"mediaType": manifest, "size": 528,
         "digest": "sha256:" + "a" * 64, "repository": "team/app", "tag": "v1"},
         "request": {"method": "GET", "host": "registry.local:5000"}},
        {"id": "e3", "action": "pull", "target": {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2048,
            "digest": "sha256:" + "b" * 64, "repository": "team/app"},
         "request": {"method": "GET", "host": "registry.local:5000"}},
    ]
    for body in ({"events": events}, {"events": events[1:2]}):  # the second is a redelivery
        response = httpx.post(exporter.url + "/webhooks/registry", json=body, timeout=10,
                              headers={"Content-Type":
                                       "application/vnd.docker.distribution.events.v1+json"})
        assert response.status_code < 300, response.text


GOLDEN = Golden(("registry",), _feed)
