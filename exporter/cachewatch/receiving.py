"""What every push endpoint does before it looks at a body: check the token, read at most N bytes.

Shared by the build, cache-push and registry receivers, so a fix to either rule (constant-time
comparison, a chunked body over the limit) reaches all of them.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import Request


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
