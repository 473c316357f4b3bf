"""``/redoc`` that loads nothing from the internet.

fastapi-offline serves ReDoc's script from the installed package, but that script still shows
Redocly's logo from ``cdn.redoc.ly`` in its sidebar: an exporter on an air-gapped host (or a
browser that logs blocked requests) should fetch nothing outside it. The script is served here
with that address replaced by an empty ``data:`` image, which ReDoc's own ``onError`` hides.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response

REDOC_JS = "/redoc.standalone.js"
_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _script() -> bytes:
    path = Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
    return path.read_bytes().replace(_CDN_LOGO, b"data:,")


def add_redoc(app: FastAPI, title: str) -> None:
    """``/redoc`` and its script; the FastAPI object must be made with ``redoc_url=None``."""

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{title} - ReDoc",
                              redoc_js_url=REDOC_JS, redoc_favicon_url="data:,",
                              with_google_fonts=False)

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_script(), media_type="text/javascript",
                        headers={"Cache-Control": "max-age=86400"})
