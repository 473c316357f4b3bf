"""The receiver kit of fast (raw ASGI) endpoints: what is refused before the body is read, how
much of a body is read, what is answered and counted. Driven through the ASGI interface itself:
``receive`` hands out the request's messages, ``send`` keeps what the endpoint answers."""

from __future__ import annotations

import asyncio
import json

from pydantic import SecretStr

from cachewatch.receiving import RawReceiver


class Request:
    """One ASGI request: its messages handed out on ``receive``, the answer kept from ``send``."""

    def __init__(self, method: str, headers: dict[bytes, bytes], chunks: list[bytes],
                 disconnect: bool = False) -> None:
        self.scope = {"type": "http", "method": method, "headers": list(headers.items())}
        self.headers = headers
        self.messages = [{"type": "http.request", "body": chunk,
                          "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)]
        if disconnect:
            self.messages = [*self.messages[:1], {"type": "http.disconnect"}]
        self.received = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        self.received += 1
        return self.messages[self.received - 1]

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[bytes, bytes], object]:
        start, body = self.sent
        return start["status"], dict(start["headers"]), json.loads(body["body"])


def _run(request: Request, token: str | None = "t0ken", limit: int = 10
         ) -> tuple[bytes | None, list[str]]:
    rejected: list[str] = []
    receiver = RawReceiver("hooks", SecretStr(token) if token else None, limit, rejected.append)
    body = asyncio.run(receiver.body(request.scope, request.receive, request.send,
                                     request.headers))
    return body, rejected


AUTH = {b"authorization": b"Bearer t0ken"}


def test_a_body_within_the_limit_is_read_whole_across_chunks():
    request = Request("POST", AUTH, [b"12345", b"", b"67890"])
    assert _run(request) == (b"1234567890", [])
    assert request.sent == []  # the endpoint answers, not the kit


def test_only_post_and_nothing_is_read_or_counted_otherwise():
    request = Request("GET", AUTH, [b"x"])
    assert _run(request) == (None, [])
    assert request.answer() == (405, {b"content-type": b"application/json",
                                      b"content-length": b"22", b"allow": b"POST"},
                                {"error": "POST only"})
    assert request.received == 0


def test_a_wrong_token_is_refused_before_a_byte_of_the_body():
    request = Request("POST", {b"authorization": b"bearer wrong"}, [b"x"])
    assert _run(request) == (None, ["auth"])
    status, headers, body = request.answer()
    assert (status, headers[b"www-authenticate"], body) == (
        401, b"Bearer", {"error": "missing or wrong bearer token (hooks.token)"})
    assert request.received == 0
    assert _run(Request("POST", {}, [b"ok"]), token=None) == (b"ok", [])  # no token set


def test_a_declared_length_over_the_limit_is_refused_unread():
    request = Request("POST", {**AUTH, b"content-length": b"11"}, [b"x" * 11])
    assert _run(request) == (None, ["too_large"])
    assert request.answer()[::2] == (413, {"error": "body over 10 bytes (hooks.max_body_bytes)"})
    assert request.received == 0


def test_a_chunked_body_is_cut_off_at_the_chunk_that_crosses_the_limit():
    request = Request("POST", AUTH, [b"123456", b"78901", b"never read"])
    assert _run(request) == (None, ["too_large"])
    assert request.answer()[0] == 413
    assert request.received == 2


def test_a_sender_that_went_away_gets_no_answer_and_nothing_counted():
    request = Request("POST", AUTH, [b"123", b"456"], disconnect=True)
    assert _run(request) == (None, [])
    assert request.sent == []
