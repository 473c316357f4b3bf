"""What every push endpoint does before it looks at a body: check the token, read at most N bytes.

Shared by the build, cache-push and registry receivers, so a fix to either rule (constant-time
comparison, a chunked body over the limit) reaches all of them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse


def bearer_ok(token: SecretStr | None, authorization: str | bytes) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` (compared in constant time)."""
    if token is None:
        return True
    given = authorization.encode() if isinstance(authorization, str) else authorization
    return hmac.compare_digest(given, f"Bearer {token.get_secret_value()}".encode())


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
        return JSONResponse({"error": f"missing or wrong bearer token ({section}.token)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    body = await read_limited(request, limit)
    if body is None:
        reject("too_large")
        return JSONResponse({"error": f"body over {limit} bytes ({section}.max_body_bytes)"},
                            status_code=413)
    return body
