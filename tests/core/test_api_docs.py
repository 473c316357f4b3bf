"""The API documentation a browser opens: ``/redoc`` and ``/docs`` fetch nothing outside the
exporter, and the OpenAPI document marks every operation that takes a receiver's token."""

from __future__ import annotations

import re

import httpx

from support import settings

# Every receiver of the sources enabled: their operations must carry the bearer requirement.
RECEIVERS = {("post", "/api/v1/builds"), ("post", "/api/v1/caches"),
             ("post", "/api/v1/ci/caches"), ("post", "/webhooks/registry"),
             ("post", "/webhooks/harbor")}
ENABLED = {"redis.enabled": False, "registry.enabled": True, "app.enabled": True,
           "ci.enabled": True, "builds.enabled": True}


def _outside_addresses(text: str) -> set[str]:
    """Addresses a page or script would load: src/href attributes and fetches of http(s) URLs
    that are not links a person clicks (the spec's own "url" fields are data, not loads)."""
    return set(re.findall(r"""(?:src|href)\s*[=:]\s*["'](https?://[^"']+)""", text))


def test_redoc_and_its_script_load_nothing_from_the_internet(exporter_factory):
    exporter = exporter_factory(settings([], **ENABLED))
    page = httpx.get(exporter.url + "/redoc")
    assert page.status_code == 200
    assert _outside_addresses(page.text) == set()
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts == ["/redoc.standalone.js"]
    script = httpx.get(exporter.url + scripts[0])
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 500_000  # ReDoc itself, not an error page
    assert "cdn.redoc.ly" not in script.text
    assert "fonts.googleapis.com" not in page.text + script.text
    docs = httpx.get(exporter.url + "/docs")
    assert _outside_addresses(docs.text) == set()


def test_every_receiver_operation_is_marked_with_its_bearer_token(exporter_factory):
    exporter = exporter_factory(settings([], **ENABLED))
    document = httpx.get(exporter.url + "/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    marked = {(method, path) for path, item in document["paths"].items()
              for method, operation in item.items()
              if isinstance(operation, dict) and operation.get("security") == [{"bearer": []}]}
    assert marked == RECEIVERS
    for path in ("/metrics", "/probe", "/healthz", "/readyz"):  # open, or basic auth if set
        assert "security" not in document["paths"][path]["get"]
