"""The minimal RESP2 reader behind the Redis fast path: whole, partial and error replies."""

from __future__ import annotations

import pytest

from cachewatch.state.resp import RedisReplyError, pack, parse


def test_commands_are_packed_as_arrays_of_bulk_strings():
    assert pack("EVALSHA", b"ab", 2, 1.5) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$3\r\n1.5\r\n")


@pytest.mark.parametrize(("raw", "value"), [
    (b"+OK\r\n", "OK"),
    (b":42\r\n", 42),
    (b"$3\r\nsha\r\n", b"sha"),
    (b"$-1\r\n", None),
    (b"*3\r\n:1\r\n:0\r\n:1\r\n", [1, 0, 1]),
    (b"*0\r\n", []),
    (b"*2\r\n$1\r\na\r\n*1\r\n:7\r\n", [b"a", [7]]),
])
def test_whole_replies(raw, value):
    assert parse(raw) == (value, len(raw))


def test_an_error_is_a_value_and_a_partial_reply_waits_for_more():
    two = b"-NOSCRIPT No matching script\r\n:1\r\n"
    error, end = parse(two)
    assert isinstance(error, RedisReplyError)
    assert str(error).startswith("NOSCRIPT")
    assert parse(two, end) == (1, len(two))  # the next reply follows on the same line
    whole = b"*3\r\n:1\r\n:0\r\n:1\r\n"
    for cut in range(len(whole)):
        assert parse(whole[:cut]) is None  # nothing consumed until the reply is whole
    assert parse(b"$5\r\nab") is None
