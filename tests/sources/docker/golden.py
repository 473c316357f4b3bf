"""Docker's golden scenario: three build logs sent to the build API, and a Dockerfile's
findings."""

from __future__ import annotations

import httpx

from support import FIXTURES, Exporter, Golden


def _feed(exporter: Exporter) -> None:
    for name in ("buildkit-cold.log", "buildkit-busted.log", "legacy-busted.log"):
        response = httpx.post(exporter.url + "/api/v1/builds",
                              content=(FIXTURES / "buildlogs" / name).read_bytes(),
                              params={"image": "app", "id": name},
                              headers={"Content-Type": "text/plain"}, timeout=30)
        assert response.status_code == 202, response.text


GOLDEN = Golden(("builds",), _feed, {"builds.dockerfiles": {
    "app": str(FIXTURES / "dockerfiles" / "OR13__camcam__Dockerfile" / "Dockerfile")}})
