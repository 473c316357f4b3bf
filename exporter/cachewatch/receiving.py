"""What every push endpoint does before it looks at a body: check the token, read at most N bytes.

Shared by the build, cache-push and registry receivers, so a fix to either rule (constant-time
comparison, a chunked body over the limit, a case-insensitive scheme) reaches all of them.
Refusals are logged here once per cause and minute, never once per request.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, SecretStr
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from .http.refusals import RefusalLog

# Each receiver counts its refusals in its own family; this only keeps the log quiet.
RECEIVER_REFUSALS = RefusalLog()


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


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to be over ``limit`` (chunked bodies included);
    nothing past the limit is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def guarded_body(request: Request, token: SecretStr | None, limit: int, section: str,
                       reject: Callable[[str], None]) -> bytes | JSONResponse:
    """The body of an authorised request within the limit, or the 401/413 answer to send
    (the refusal counted through ``reject``); ``section`` names the settings in messages."""
    if not bearer_ok(token, request.headers.get("authorization", "")):
        reject("auth")
        refused(section, "auth")
        return JSONResponse({"error": f"missing or wrong bearer token ({section}.token)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await read_limited(request, limit)
    except ClientDisconnect:
        # The client went away (or was cut off by web.body_timeout): nobody gets this answer.
        return JSONResponse({"error": "the client disconnected"}, status_code=400)
    if body is None:
        reject("too_large")
        refused(section, "too_large")
        return JSONResponse({"error": f"body over {limit} bytes ({section}.max_body_bytes)"},
                            status_code=413)
    return body


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
