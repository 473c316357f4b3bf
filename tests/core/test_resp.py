"""The one RESP2 codec of both Redis clients (the Redis source's and the state store's): whole,
partial and error replies, the reply budget, the connection set-up, and what the two former
parsers did differently (simple strings, errors inside arrays, null arrays, the budget)."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachewatch.resp import (
    MAX_LINE,
    Incomplete,
    ProtocolError,
    Replies,
    ReplyError,
    ReplyTooLarge,
    encode,
    encode_all,
    handshake,
    parse,
    tls_context,
)


def test_commands_are_encoded_as_arrays_of_bulk_strings():
    assert encode("EVALSHA", b"ab", 2, 1.5) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$3\r\n1.5\r\n")
    assert encode_all([("PING",), ("INFO", "default")]) == (
        b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$7\r\ndefault\r\n")


@pytest.mark.parametrize(("raw", "value"), [
    (b"+OK\r\n", b"OK"),  # bytes like a bulk string (the state's parser gave "OK")
    (b":42\r\n", 42),
    (b":-3\r\n", -3),
    (b"$3\r\nsha\r\n", b"sha"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),  # a null array (an EXEC whose WATCH failed); the state's gave []
    (b"*3\r\n:1\r\n:0\r\n:1\r\n", [1, 0, 1]),
    (b"*0\r\n", []),
    (b"*2\r\n$1\r\na\r\n*1\r\n:7\r\n", [b"a", [7]]),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),  # binary-safe: CRLF inside a bulk string
])
def test_whole_replies(raw, value):
    assert parse(raw) == (value, len(raw))


def test_an_error_is_a_value_also_inside_an_array():
    """The Redis source's parser raised an error found inside an array, half-way through the
    reply; now it is a value in its place and the whole reply is read (the connection stays in
    step: the next reply parses)."""
    raw = b"*3\r\n:1\r\n-ERR in a script\r\n$2\r\nok\r\n:5\r\n"
    (first, error, last), end = parse(raw)
    assert (first, last) == (1, b"ok")
    assert isinstance(error, ReplyError)
    assert str(error) == "ERR in a script"
    assert parse(raw, end) == (5, len(raw))


def test_a_top_level_error_is_a_value_and_the_next_reply_follows():
    two = b"-NOSCRIPT No matching script\r\n:1\r\n"
    error, end = parse(two)
    assert isinstance(error, ReplyError)
    assert str(error) == "NOSCRIPT No matching script"
    assert parse(two, end) == (1, len(two))


def test_a_partial_reply_asks_for_more_and_consumes_nothing():
    whole = b"*3\r\n$3\r\nabc\r\n:0\r\n+OK\r\n"
    for cut in range(len(whole)):
        with pytest.raises(Incomplete):
            parse(whole[:cut])
    replies = Replies()
    for byte in whole[:-1]:
        replies.feed(bytes([byte]))
        with pytest.raises(Incomplete):
            replies.pop()
    replies.feed(whole[-1:])
    assert replies.pop() == [b"abc", 0, b"OK"]
    assert replies.buffer == b""


def test_the_budget_refuses_what_is_declared_before_it_is_read():
    with pytest.raises(ReplyTooLarge, match="declares 524288000 bytes, over 1000"):
        parse(b"$524288000\r\n", budget=1000)  # not a byte of the 500 MB was needed
    with pytest.raises(ReplyTooLarge, match="declares 100000000 elements"):
        parse(b"*100000000\r\n", budget=1000)
    assert parse(b"$5\r\nhello\r\n", budget=5) == (b"hello", 11)  # at the budget: kept
    big = b"$2000000\r\n" + b"x" * 2_000_000 + b"\r\n"
    assert parse(big)[0] == b"x" * 2_000_000  # no budget by default (the state store's)


def test_the_budget_bounds_what_is_received_too():
    replies = Replies(budget=100)
    replies.feed(b"*1000\r\n" + b":1\r\n" * 30)  # declares 4000 bytes... of 4-byte elements
    with pytest.raises(ReplyTooLarge):
        replies.pop()
    replies = Replies(budget=100)
    replies.feed(b"*20\r\n" + b":1\r\n" * 20)  # 85 bytes: within
    assert replies.pop() == [1] * 20
    replies = Replies(budget=100)
    replies.feed(b"*25\r\n" + b":1\r\n" * 25)  # 105 bytes, whole: over
    with pytest.raises(ReplyTooLarge, match="reply over 100 bytes"):
        replies.pop()


def test_what_is_not_resp_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="not a Redis reply"):
        parse(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ProtocolError, match=f"a reply line over {MAX_LINE} bytes"):
        parse(b"+" + b"x" * (MAX_LINE + 1))
    with pytest.raises(ValueError, match="invalid literal for int"):
        parse(b":twelve\r\n")


def _wire(value):
    """A reply value as a server writes it (bulk strings for bytes)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n" % len(value) + b"".join(_wire(item) for item in value)


replies_strategy = st.recursive(
    st.none() | st.integers(-2**63, 2**63 - 1) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6), max_leaves=30)


@given(st.lists(replies_strategy, min_size=1, max_size=4))
def test_any_pipeline_of_replies_comes_back_as_written(values):
    wire = b"".join(_wire(v) for v in values)
    replies = Replies()
    replies.feed(wire)
    assert [replies.pop() for _ in values] == values
    assert replies.buffer == b""


@pytest.mark.parametrize(("username", "password", "db", "setup"), [
    (None, None, 0, []),
    (None, "pw", 0, [("AUTH", "pw")]),
    ("", "pw", 0, [("AUTH", "pw")]),  # redis://:pw@host: no user
    ("alice", "pw", 0, [("AUTH", "alice", "pw")]),
    (None, None, 2, [("SELECT", 2)]),
    ("alice", "pw", 3, [("AUTH", "alice", "pw"), ("SELECT", 3)]),
])
def test_the_set_up_of_a_connection(username, password, db, setup):
    assert handshake(username, password, db) == setup


def test_tls_verifies_by_default_and_says_when_it_does_not():
    strict = tls_context()
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    loose = tls_context(verify=False)
    assert (loose.verify_mode, loose.check_hostname) == (ssl.CERT_NONE, False)
    any_name = tls_context(check_hostname=False)
    assert (any_name.verify_mode, any_name.check_hostname) == (ssl.CERT_REQUIRED, False)
