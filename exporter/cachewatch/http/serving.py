"""The HTTP server: uvicorn with TLS from the web config and limits that hold under abuse.

uvicorn alone keeps a connection that never sends a request open forever, accepts headers of
any size and any slowness, logs every malformed request, and has no connection cap that spares
idle connections (``limit_concurrency`` answers 503 to real requests while idle sockets hold
the slots). ``GuardedProtocol`` adds what Go's ``http.Server`` timeouts give node_exporter:

* ``web.header_timeout``: request line and headers within this long of the connection (or of a
  keep-alive request's first byte), else the connection is closed (slowloris);
* ``web.body_timeout``: the body within this long of the headers;
* ``web.max_header_bytes``: larger request heads get ``431``;
* ``web.max_connections``: at the cap the connection that has waited longest without sending a
  request is closed to make room, so idle sockets cannot lock Prometheus out; with none idle,
  the new connection is closed;
* refusals are counted and logged once per cause and minute (``refusals``), never per
  connection;
* a request answered before its body was read (a ``413``, a ``401``) has the rest of its body
  drained, up to ``DRAIN_LIMIT`` bytes (then the connection is closed), so the next request's
  head is never read from the middle of an unread body.

The open-file limit is raised to its hard limit at start-up (as Go programs do) and the cap is
lowered to fit it, so accepting a connection never fails with EMFILE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .deadlines import NEVER, Sweep, interval
from .guard import LiveWebConfig
from .refusals import RefusalLog
from .webconfig import WebConfigError, load, load_certificate, peer_allowed
from .writes import HeadWithBody

log = logging.getLogger("cachewatch.web")

# File descriptors kept free of connections: the collectors' sockets, files, the listener.
FD_RESERVE = 128
# How often the web config file (and the files it names) is checked for changes.
RELOAD_INTERVAL = 5.0
# Body bytes read and thrown away after an early answer before the connection is closed instead.
DRAIN_LIMIT = 1 << 20
# What a connection's deadline times (``GuardedProtocol._cause``); the first two are refusals.
HEADER_TIMEOUT, BODY_TIMEOUT, KEEPALIVE = "header_timeout", "body_timeout", "keepalive"


@dataclass
class Limits:
    """What every connection of one server shares: limits, refusal log, the idle queue and the
    sweep that ends connections past their deadline."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 65536
    max_connections: int = 1024
    refusals: RefusalLog = field(default_factory=RefusalLog)
    allowed_sans: list[str] | None = None
    keepalive_timeout: float = 5.0
    # Connections waiting for a request, oldest first: the ones shed at the cap.
    waiting: OrderedDict[GuardedProtocol, None] = field(default_factory=OrderedDict)
    sweep: Sweep = field(init=False)

    def __post_init__(self) -> None:
        self.sweep = Sweep(interval(self.header_timeout, self.body_timeout,
                                    self.keepalive_timeout))


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, a head size limit, a connection
    cap that sheds idle connections first, and quiet refusals.

    Timeouts are deadlines the server's sweep checks (``deadlines``), uvicorn's keep-alive
    timeout included: a keep-alive request arms and cancels no timer. An answer's head is
    written with its body (``writes``)."""

    def __init__(self, config: ServingConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits = config.limits
        self.deadline = NEVER  # when the current phase (``_cause``) must be over
        self._cause = ""
        self._awaiting = False
        self._head_bytes = 0
        self._draining: int | None = None  # body bytes thrown away after an early answer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if limits.allowed_sans is not None and not peer_allowed(
                transport.get_extra_info("peercert"), limits.allowed_sans):
            limits.refusals.refused("unauthorized", "client certificate has no allowed SAN")
            transport.abort()
            return
        if len(self.connections) > limits.max_connections:
            victim = next(iter(limits.waiting), None)
            limits.refusals.refused("connection_cap", "web.max_connections reached",
                                    max_connections=limits.max_connections)
            if victim is None:
                transport.abort()
                return
            victim._close()
        self._await_request()
        self._arm(limits.header_timeout, HEADER_TIMEOUT)
        limits.sweep.watch(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.limits.sweep.forget(self)
        self.limits.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting:
            self._head_bytes += len(data)
            if self._cause == KEEPALIVE:  # a keep-alive request begins: timed from here
                self._arm(self.limits.header_timeout, HEADER_TIMEOUT)
        elif self._draining is not None:
            self._draining += len(data)
            if self._draining > DRAIN_LIMIT:
                self._close()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.limits.refusals.refused("bad_request", "invalid HTTP request")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            pass  # no WebSocket endpoints: served as a plain request, nothing to log
        if self._awaiting and self._head_bytes > self.limits.max_header_bytes \
                and not self.transport.is_closing():
            self.limits.refusals.refused("header_too_large", "request head over "
                                         "web.max_header_bytes")
            self._answer_and_close(b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting:  # a pipelined request begins: its head is timed from here
            self._await_request()
        if not self._cause:
            self._arm(self.limits.header_timeout, HEADER_TIMEOUT)

    def on_headers_complete(self) -> None:
        self._awaiting = False
        self.limits.waiting.pop(self, None)
        self._arm(self.limits.body_timeout, BODY_TIMEOUT)
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and self.scope["method"] != "HEAD":
            cycle.transport = HeadWithBody(self.transport, cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        if self._draining is not None:  # the unread body is over: the next request may begin
            self._draining = None
            if not self.transport.is_closing():
                self._await_request()
                self._arm(self.timeout_keep_alive, KEEPALIVE)

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive wait a deadline instead of a timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        if not self.cycle.response_complete:
            return
        if self.cycle.more_body:  # answered before its body was read: drain the rest first
            self._draining = 0
        else:
            self._await_request()  # idle between requests (none pipelined): first to go
            if not self.pipeline:
                self._arm(self.timeout_keep_alive, KEEPALIVE)

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn logs a warning per ``Upgrade`` request; a client must not fill the log."""

    def _await_request(self) -> None:
        self._awaiting = True
        self._head_bytes = 0
        self.limits.waiting[self] = None

    def _arm(self, seconds: float, cause: str) -> None:
        self.deadline = self.loop.time() + seconds
        self._cause = cause

    def _disarm(self) -> None:
        self.deadline = NEVER
        self._cause = ""

    def expire(self) -> None:
        """The sweep found the current phase over its timeout: close, counting a slow
        client (not an idle one: a connection that never began a request, or kept alive)."""
        cause = self._cause
        self._disarm()
        if self.transport.is_closing():
            return
        if cause == BODY_TIMEOUT or (cause == HEADER_TIMEOUT and self._head_bytes):
            self.limits.refusals.refused(cause, f"request not received within web.{cause}")
        self._close()

    def _close(self) -> None:
        self._disarm()
        self.limits.waiting.pop(self, None)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _answer_and_close(self, status: bytes) -> None:
        self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
        self._close()


class ServingConfig(uvicorn.Config):
    """uvicorn's config plus the limits and the TLS context built from the web config."""

    def __init__(self, app: Any, *, limits: Limits, live: LiveWebConfig, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedProtocol, ws="none", lifespan="on", log_config=None,
                         access_log=False, server_header=False, **kwargs)
        self.limits = limits
        self.live = live
        self.context = live.current.context()

    def load(self) -> None:
        super().load()
        self.ssl = self.context  # ours: versions, ciphers and client auth as the file says


class CachewatchServer(uvicorn.Server):
    """Serves, and reloads the web config file (users, headers, certificate) when it changes,
    as the exporter-toolkit does, so rotated certificates need no restart."""

    config: ServingConfig

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.config.live.current.path is not None:
            self._watcher = asyncio.create_task(self._watch())

    async def shutdown(self, sockets: Any = None) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.cancel()
        await super().shutdown(sockets)

    async def _watch(self) -> None:
        live = self.config.live
        seen = live.current.stamp()
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            stamp = live.current.stamp()
            if stamp != seen:
                seen = stamp
                reload(live, self.config.context)


def reload(live: LiveWebConfig, context: Any) -> bool:
    """Apply a changed web config: users, headers, rate limit and the certificate at once;
    a broken file is logged and the running configuration kept."""
    old = live.current
    try:
        new = load(old.path, allow_empty=False)
        if (new.tls is None) != (old.tls is None):
            raise WebConfigError("turning TLS on or off needs a restart")
        if new.tls is not None and old.tls is not None and context is not None:
            load_certificate(context, new.tls)
    except (WebConfigError, OSError, ValueError) as exc:
        log.error("web config not reloaded; the running one stays in force",
                  extra={"error": str(exc)})
        return False
    live.current = new
    log.info("web config reloaded", extra={"file": str(old.path)})
    return True


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (as Go's runtime does); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def connection_cap(wanted: int, open_files: int) -> int:
    """``web.max_connections``, lowered (with a warning) to leave ``FD_RESERVE`` files free."""
    fits = max(16, open_files - FD_RESERVE)
    if wanted > fits:
        log.warning("web.max_connections lowered to fit the open-file limit",
                    extra={"wanted": wanted, "max_connections": fits, "open_files": open_files})
        return fits
    return wanted


def make_server(app: Any, host: str, port: int, web: Any, live: LiveWebConfig,
                refusals: RefusalLog) -> CachewatchServer:
    """The server for the ASGI application with the ``web`` settings
    (``config.WebSettings``)."""
    tls = live.current.tls
    limits = Limits(
        header_timeout=web.header_timeout, body_timeout=web.body_timeout,
        max_header_bytes=web.max_header_bytes,
        max_connections=connection_cap(web.max_connections, raise_open_file_limit()),
        refusals=refusals, allowed_sans=tls.client_allowed_sans if tls else None,
        keepalive_timeout=web.keepalive_timeout)
    if tls is not None:
        # uvicorn passes no handshake timeout to asyncio, whose default is 60 s: a client
        # that opens TLS connections and stays silent would hold each one that long.
        asyncio.constants.SSL_HANDSHAKE_TIMEOUT = web.header_timeout
    return CachewatchServer(ServingConfig(
        app, host=host, port=port, limits=limits, live=live,
        timeout_keep_alive=web.keepalive_timeout))
