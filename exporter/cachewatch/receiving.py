"""What every push endpoint does before it looks at a body: check the token, read at most N bytes.

Writes are closed by default: a receiver with no token takes them from loopback only (or from
a client the web config's basic auth let in); anyone else gets 403 naming the settings. Bodies
count against the receivers' shared budget (``http.budget``) as they are read: past it, 503.

Shared by every source's receivers, so a fix to either rule (constant-time
comparison, a chunked body over the limit, a case-insensitive scheme) reaches all of them.
Refusals are logged here once per cause and minute, never once per request.

Two ways in: ``guarded_body`` for a route of the framework, ``RawReceiver`` for a fast receiver
(a source's ``fast_routes``: raw ASGI, ahead of routing, middleware and request objects, for
senders of thousands of requests a second). Both refuse alike, with the same answers.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, SecretStr
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from .http.budget import budget_of
from .http.guard import AUTHENTICATED
from .http.refusals import RefusalLog

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_RETRY = {"Retry-After": "1"}

# Each receiver counts its refusals in its own family; this only keeps the log quiet.
RECEIVER_REFUSALS = RefusalLog()
BUSY = 503, {"error": "too many request bodies at once (web.max_inflight_body_bytes); retry"}


def bearer_ok(token: SecretStr | None, authorization: str | bytes) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` (compared in constant time).

    The scheme is case-insensitive (RFC 7235 section 2.1): ``bearer`` and ``BEARER`` count.
    """
    if token is None:
        return True
    given = authorization.encode("latin-1", "replace") if isinstance(authorization, str) \
        else authorization
    scheme, _, credentials = given.strip().partition(b" ")
    expected = token.get_secret_value().encode()
    # Compared even when the scheme is wrong, so the answer takes the same time either way.
    same = hmac.compare_digest(credentials.strip(b" "), expected)
    return same and scheme.lower() == b"bearer"


def refused(section: str, reason: str) -> None:
    """Log a refused receiver request (rate-limited per section and reason)."""
    RECEIVER_REFUSALS.refused(f"{section}:{reason}", "receiver request refused",
                              receiver=section, reason=reason)


def writer_allowed(scope: Scope, token: SecretStr | None) -> bool:
    """Writes are closed by default: a receiver without a token takes them from loopback (or
    a Unix socket) only, unless the web config's basic auth let the request in."""
    if token is not None or scope.get(AUTHENTICATED):
        return True
    client = scope.get("client")
    return not client or _loopback(client[0])


@lru_cache(maxsize=1024)
def _loopback(host: str) -> bool:
    """Whether a client address is loopback; remembered, as parsing it would cost as much as
    the rest of a webhook's checks (a sender writes from the same few addresses)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to be over ``limit`` (chunked bodies included);
    nothing past the limit is read. Raises ``OverBudget`` when the receivers' shared budget
    cannot hold it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    budget = Reservation(request.scope, int(declared) if declared.isdigit() else None)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
        budget.grow(len(body))
    return bytes(body)


class OverBudget(Exception):
    """The receivers together hold ``web.max_inflight_body_bytes``: answer 503, retry later."""


class Reservation:
    """A request's share of the body budget: its declared length at once, else as it grows."""

    def __init__(self, scope: Scope, declared: int | None) -> None:
        self.scope = scope
        self.budget = budget = budget_of(scope)
        self.held = 0
        if declared and budget is not None:  # at once, in the bytes the body will hold
            more = declared if declared >= budget.step else budget.step
            if not budget.take(scope, more):
                raise OverBudget
            self.held = more

    def grow(self, size: int) -> None:
        """Hold at least ``size`` bytes; raises ``OverBudget``."""
        if self.budget is None or size <= self.held:
            return
        more = max(size - self.held, self.budget.step)
        if not self.budget.take(self.scope, more):
            raise OverBudget
        self.held += more


async def guarded_body(request: Request, token: SecretStr | None, limit: int, section: str,
                       reject: Callable[[str], None]) -> bytes | JSONResponse:
    """The body of an authorised request within the limit, or the 401/413 answer to send
    (the refusal counted through ``reject``); ``section`` names the settings in messages."""
    if not writer_allowed(request.scope, token):
        status, answer, headers = forbidden(request.scope, section)
        return JSONResponse(answer, status_code=status, headers=headers)
    if not bearer_ok(token, request.headers.get("authorization", "")):
        status, answer, headers = refusal(section, "auth", limit, reject)
        return JSONResponse(answer, status_code=status, headers=headers)
    try:
        body = await read_limited(request, limit)
    except ClientDisconnect:
        # The client went away (or was cut off by web.body_timeout): nobody gets this answer.
        return JSONResponse({"error": "the client disconnected"}, status_code=400)
    except OverBudget:
        return JSONResponse(BUSY[1], status_code=BUSY[0], headers=_RETRY)
    if body is None:
        status, answer, headers = refusal(section, "too_large", limit, reject)
        return JSONResponse(answer, status_code=status, headers=headers)
    return body


def refusal(section: str, reason: str, limit: int, reject: Callable[[str], None],
            log_as: str | None = None) -> tuple[int, dict[str, str], dict[str, str]]:
    """Count (``reject``) and log a request refused for ``auth`` or ``too_large``, and the
    answer it gets: ``(status, JSON body, headers)``; the body names the setting to look at."""
    reject(reason)
    refused(log_as or section, reason)
    if reason == "auth":
        return 401, {"error": f"missing or wrong bearer token ({section}.token)"}, {
            "WWW-Authenticate": "Bearer"}
    return 413, {"error": f"body over {limit} bytes ({section}.max_body_bytes)"}, {}


def forbidden(scope: Scope, section: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """A write from another host to a receiver with no token: counted and logged (once a
    minute) as ``write_forbidden``, answered 403 with the settings that open it."""
    budget = budget_of(scope)
    (budget.refusals if budget is not None else RECEIVER_REFUSALS).refused(
        "write_forbidden", "write from another host refused: the receiver has no token",
        receiver=section)
    return 403, {"error": f"writes from other hosts need {section}.token (or basic_auth_users "
                          "in the web config); without either only loopback may write"}, {}




class RawReceiver:
    """The receiver kit of a fast (raw ASGI) endpoint: ``POST`` only, the bearer token checked
    before a byte of the body is read, the body read up to ``limit`` (a declared or chunked
    body over it is refused, nothing past it read), refusals counted through ``reject`` and
    logged (as ``log_as``, else ``section``), answers in JSON."""

    def __init__(self, section: str, token: SecretStr | None, limit: int,
                 reject: Callable[[str], None], log_as: str | None = None) -> None:
        self.section = section
        self.token = token
        self.limit = limit
        self.reject = reject
        self.log_as = log_as

    async def body(self, scope: Scope, receive: Receive, send: Send,
                   headers: dict[bytes, bytes]) -> bytes | None:
        """The body of an authorised ``POST`` within the limit; ``None`` once the request was
        answered (405, 401, 413) or the client went away (nobody to answer)."""
        if scope["method"] != "POST":
            await send_json(send, 405, {"error": "POST only"}, {"Allow": "POST"})
            return None
        if not writer_allowed(scope, self.token):
            status, answer, extra = forbidden(scope, self.section)
            await send_json(send, status, answer, extra)
            return None
        if not bearer_ok(self.token, headers.get(b"authorization", b"")):
            return await self._refuse(send, "auth")
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, "too_large")
        try:
            return await self._read(scope, receive, send,
                                    int(declared) if declared.isdigit() else None)
        except OverBudget:
            await send_json(send, *BUSY, _RETRY)
            return None

    async def _read(self, scope: Scope, receive: Receive, send: Send,
                    declared: int | None) -> bytes | None:
        budget = Reservation(scope, declared)
        message = await receive()
        if not message.get("more_body", False):  # the whole body in one message: no copy
            if message["type"] == "http.disconnect":
                return None
            body: bytes = message.get("body", b"")
            if len(body) > self.limit:
                return await self._refuse(send, "too_large")
            if len(body) > budget.held:  # not within its declared length's share already
                budget.grow(len(body))
            return body
        chunks = bytearray()
        while True:
            if message["type"] == "http.disconnect":
                return None
            chunks += message.get("body", b"")
            if len(chunks) > self.limit:
                return await self._refuse(send, "too_large")
            budget.grow(len(chunks))
            if not message.get("more_body", False):
                return bytes(chunks)
            message = await receive()

    async def _refuse(self, send: Send, reason: str) -> None:
        status, answer, headers = refusal(self.section, reason, self.limit, self.reject,
                                          self.log_as)
        await send_json(send, status, answer, headers)


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
    """A whole JSON answer on raw ASGI."""
    await send_encoded(send, status, json.dumps(body).encode(), headers)


async def send_encoded(send: Send, status: int, payload: bytes,
                       headers: dict[str, str] | None = None) -> None:
    """A whole answer already encoded as JSON (a receiver may keep its common answers so)."""
    head = [_JSON, (b"content-length", b"%d" % len(payload))]
    if headers:
        head += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


_JSON = (b"content-type", b"application/json")


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined, for a route's ``openapi_extra``.

    pydantic writes ``{"$ref": "#/$defs/X"}``, which in an OpenAPI document resolves against
    the document's root, where there is no ``$defs``: Swagger UI, schemathesis and code
    generators would all see a broken reference.
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)
