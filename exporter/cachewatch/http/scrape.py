"""``GET /metrics`` as a raw ASGI application, and the compression every exposition answer shares.

A scrape is the request this process exists for. Through the framework it paid for routing,
five middlewares, dependency resolution and a ``Response`` object: about as much CPU as the
whole ``/healthz`` answer. Served here, ahead of the framework (``FastPaths``) but behind the
``Guard`` (basic auth, the web config's headers and rate limit), it writes the same status,
headers and body. Any other method goes on to the framework, which answers as it always did
(405); the route stays declared there for the OpenAPI document.
"""

from __future__ import annotations

import zlib

from starlette.types import ASGIApp, Receive, Scope, Send

from ..metrics.exposition import Exposition

# Smaller bodies go out as they are: compressing them saves the network less than it costs.
GZIP_MIN_BYTES = 4096
_GZIP_HEADERS = ((b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding"))


def compressed(body: bytes, accept_encoding: str | None
               ) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """The body to send and the headers that say how, for the client's ``Accept-Encoding``.

    Prometheus asks for gzip; a large exposition (many targets) shrinks several-fold. Level 1:
    within a tenth of level 9's size on exposition text, at a third of level 5's CPU. One
    ``zlib`` call writes the whole gzip member (``gzip.compress`` adds a Python-level header,
    trailer and CRC pass around the same deflate); the header's time stamp is 0, which RFC 1952
    allows ("no time stamp is available").
    """
    if len(body) >= GZIP_MIN_BYTES and accept_encoding and "gzip" in accept_encoding:
        return zlib.compress(body, 1, 31), _GZIP_HEADERS
    return body, ()


def response_headers(body: bytes, content_type: str,
                     encoding: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The headers, in the order Starlette's ``Response`` writes them."""
    return [*encoding, (b"content-length", b"%d" % len(body)),
            (b"content-type", content_type.encode("latin-1"))]


class MetricsEndpoint:
    """``/metrics``: every enabled collector, read now, encoded for the client's ``Accept``."""

    def __init__(self, exposition: Exposition, framework: ASGIApp) -> None:
        self.exposition = exposition
        self.framework = framework

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await self.framework(scope, receive, send)
            return
        accept = accept_encoding = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"accept" and accept is None:
                accept = value.decode("latin-1")
            elif name == b"accept-encoding" and accept_encoding is None:
                accept_encoding = value.decode("latin-1")
        body, content_type = await self.exposition.render_async(accept)
        body, encoding = compressed(body, accept_encoding)
        await send({"type": "http.response.start", "status": 200,
                    "headers": response_headers(body, content_type, encoding)})
        await send({"type": "http.response.body", "body": body})
