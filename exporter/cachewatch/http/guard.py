"""The ASGI layer ahead of every endpoint: the web config's headers, rate limit and basic auth.

It wraps the whole application, the raw webhook fast paths included, so no endpoint is left out by
accident. Paths listed in ``auth_excluded_paths`` and receivers that check a bearer token of
their own (``Source.bearer_paths``; a sender has one ``Authorization`` header) skip basic auth;
everything else needs a user of ``basic_auth_users`` when any is configured.

bcrypt is slow on purpose (~100 ms at cost 10), so results are cached (successes and failures
apart, so a flood of wrong passwords cannot evict the right ones), comparisons run one at a time
on a thread of their own, never on the event loop. One client address may have at most
``PER_CLIENT`` comparisons waiting (more get 429, saying so), so a flood of wrong passwords from
one address holds the thread a few comparisons long and a right password from elsewhere gets in;
past ``MAX_PENDING`` from everyone, requests get 503.

A request with more than one ``Authorization`` header gets 400 on every path: which one a
receiver or a proxy would read is a guess, and a guess is how auth fails open. The Guard also
hands every request the receivers' body budget and takes back what the request held once it is
answered (``budget``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .budget import HELD_KEY, SCOPE_KEY, BodyBudget
from .refusals import RefusalLog
from .webconfig import WebConfig

# A hash of a password nobody has: an unknown user costs the same time as a known one, so
# answers do not tell which users exist.
_DECOY = b"$2b$10$4WQJb7XwKRWtBxM4ReICi.rj9ICBKAzeiOFQ1i9DFz4EgWA4FIpRy"
MAX_PENDING = 32
PER_CLIENT = 4  # comparisons waiting for one client address at most
AUTHENTICATED = "cachewatch.basic_auth"  # scope key: the web config's basic auth let it in


class LiveWebConfig:
    """The web configuration in force; ``serving`` swaps it when the file changes."""

    def __init__(self, config: WebConfig) -> None:
        self.current = config


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, with cached verdicts."""

    def __init__(self, cache_size: int = 1024) -> None:
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        self._size = cache_size
        self._pending = 0
        self._by_client: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cachewatch-bcrypt")

    async def verify(self, users: dict[str, bytes], header: bytes, client: str = ""
                     ) -> bool | str:
        """True for a known user with the right password, False for anyone else; ``"busy"``
        when too many checks wait, ``"client_busy"`` when too many wait for ``client``."""
        parsed = _parse_basic(header)
        if parsed is None:
            return False
        user, password = parsed
        known = users.get(user)
        hashed = known if known is not None else _DECOY
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password))).digest()
        if key in self._ok:
            self._ok.move_to_end(key)
            return known is not None
        if key in self._bad:
            return False
        waiting = self._by_client.get(client, 0)
        if waiting >= PER_CLIENT:
            return "client_busy"
        if self._pending >= MAX_PENDING:
            return "busy"
        self._pending += 1
        self._by_client[client] = waiting + 1
        try:
            matches = await asyncio.get_running_loop().run_in_executor(
                self._pool, _checkpw, password, hashed)
        finally:
            self._pending -= 1
            left = self._by_client.pop(client) - 1
            if left:
                self._by_client[client] = left
        verdict = matches and known is not None
        cache = self._ok if verdict else self._bad
        cache[key] = None
        while len(cache) > self._size:
            cache.popitem(last=False)
        return verdict

    def close(self) -> None:
        """Stop the bcrypt thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        import bcrypt  # loaded with the first password to check: most exporters have none

        return bcrypt.checkpw(password, hashed)
    except ValueError:  # over 72 bytes, or a malformed hash: not a match
        return False


def _parse_basic(header: bytes) -> tuple[str, bytes] | None:
    """``(user, password)`` from ``Basic base64(user:password)``; the scheme is
    case-insensitive (RFC 7235)."""
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode(), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class TokenBucket:
    """``rate_limit``: one request per ``interval`` on average, bursts up to ``burst``."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        """Spend a token if one is there."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) / self.interval)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Guard:
    """ASGI middleware: extra headers, rate limit, basic auth; everything else passes."""

    def __init__(self, app: ASGIApp, web: LiveWebConfig, refusals: RefusalLog,
                 bearer_paths: Iterable[str] = (), budget: BodyBudget | None = None) -> None:
        self.app = app
        self.web = web
        self.refusals = refusals
        self.bearer_paths = frozenset(bearer_paths)
        self.auth = BasicAuth()
        self.budget = budget
        self._bucket: tuple[tuple[float, int], TokenBucket] | None = None
        self._config: WebConfig | None = None  # the config ``_passes`` was worked out for
        self._passes = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.budget
        if budget is not None:
            scope[SCOPE_KEY] = budget
        try:
            if _two_authorizations(scope["headers"]):
                self.refusals.refused("bad_request", "request with two Authorization headers")
                await _plain(send, 400, b"Bad Request: more than one Authorization header\n",
                             [(b"connection", b"close")])
            elif self._passes_through():
                await self.app(scope, receive, send)
            else:
                await self._guarded(scope, receive, send)
        finally:
            if budget is not None and HELD_KEY in scope:
                budget.give_back(scope)

    def _passes_through(self) -> bool:
        """Whether the web config in force turns none of headers, rate limit and users on:
        then a request passes straight through. Read again whenever the file was reloaded."""
        config = self.web.current
        if config is not self._config:
            self._config = config
            self._passes = not (config.headers or config.rate_interval > 0 or config.users)
        return self._passes

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self.web.current
        if config.headers:
            send = _with_headers(send, config.headers)
        if config.rate_interval > 0 and not self._bucket_for(config).take():
            self.refusals.refused("rate_limited", "request over the web config's rate_limit")
            await _plain(send, 429, b"Too Many Requests\n", [(b"retry-after", b"1")])
            return
        path = scope["path"]
        if config.users and path not in config.excluded_paths and path not in self.bearer_paths:
            header = dict(scope["headers"]).get(b"authorization", b"")
            client = scope.get("client")
            verdict = await self.auth.verify(config.users, header, client[0] if client else "")
            if isinstance(verdict, str):
                await self._busy(send, verdict)
                return
            if not verdict:
                self.refusals.refused("unauthorized", "request without valid basic auth",
                                      path=path[:100])
                await _plain(send, 401, b"Unauthorized\n",
                             [(b"www-authenticate", b'Basic realm="cachewatch"')])
                return
            scope[AUTHENTICATED] = True
        await self.app(scope, receive, send)

    async def _busy(self, send: Send, why: str) -> None:
        """Too many password checks waiting: everyone's (503) or this address's (429)."""
        self.refusals.refused("auth_busy", "too many password checks waiting", why=why)
        if why == "client_busy":
            await _plain(send, 429, b"Too Many Requests: %d password checks from your address "
                         b"are already waiting; retry\n" % PER_CLIENT, [(b"retry-after", b"1")])
        else:
            await _plain(send, 503, b"Service Unavailable: %d password checks are waiting; "
                         b"retry\n" % MAX_PENDING, [(b"retry-after", b"1")])

    def _bucket_for(self, config: WebConfig) -> TokenBucket:
        wanted = (config.rate_interval, config.rate_burst)
        if self._bucket is None or self._bucket[0] != wanted:
            self._bucket = (wanted, TokenBucket(*wanted))
        return self._bucket[1]


def _two_authorizations(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request carries more than one ``Authorization`` header."""
    seen = False
    for name, _ in headers:
        if name == b"authorization":
            if seen:
                return True
            seen = True
    return False


def _with_headers(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)
    return sending


async def _plain(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
