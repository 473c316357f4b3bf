"""The Redis state store against a real redis-server, below the HTTP layer: its URL, the writer
thread's connection (set-up, a connection the server closed, a script Redis lost), claims of
several sources in one round trip, and app records under WATCH when another replica races."""

from __future__ import annotations

import ssl

import pytest

from cachewatch.state import Batch, Change, StateError, Update
from cachewatch.state.connections import BlockingRedis, parse_address
from cachewatch.state.redis import RedisStore

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://cache", ("cache", 6379, 0, None, None, False)),
    ("redis://cache:6380/2", ("cache", 6380, 2, None, None, False)),
    ("redis://:s%40cret@cache/1", ("cache", 6379, 1, None, "s@cret", False)),
    ("redis://alice:pw@cache:7000?db=4", ("cache", 7000, 4, "alice", "pw", False)),
    ("rediss://cache:6380/0?ssl_cert_reqs=none", ("cache", 6380, 0, None, None, True)),
])
def test_state_urls(url, expected):
    address = parse_address(url)
    assert (address.host, address.port, address.db, address.username, address.password,
            address.tls is not None) == expected


def test_tls_options_of_a_state_url():
    loose = parse_address("rediss://c/0?ssl_cert_reqs=none").tls
    assert loose is not None
    assert loose.verify_mode == ssl.CERT_NONE
    no_name = parse_address("rediss://c/0?ssl_check_hostname=false").tls
    assert no_name is not None
    assert (no_name.verify_mode, no_name.check_hostname) == (ssl.CERT_REQUIRED, False)


@pytest.mark.parametrize(("url", "message"), [
    ("redis://cache/0?socket_timeout=5", "unknown option socket_timeout; known: db, ssl_ca_certs"),
    ("redis://cache:port/0", "Port could not be cast"),
    ("redis://cache/zero", "invalid literal"),
    ("rediss://cache/0?ssl_ca_certs=/nonexistent/ca.pem", "No such file"),
])
def test_a_bad_state_url_is_refused_at_start_up(url, message):
    with pytest.raises(StateError, match=message):
        RedisStore(url, "r1")


def _claim(source: str, once: bytes | None, field: str, delta: float = 1.0) -> Batch:
    return Batch(source, [Change({(field, "x"): delta}, once, {(field + "_dup", "x"): 1.0})])


def test_claims_of_several_sources_in_one_write_and_a_script_redis_lost(redis_plain):
    store = RedisStore(redis_plain.url + "/0", "r1")
    try:
        first = store.write([_claim("a", b"id-1", "pulls"), _claim("b", b"id-1", "pulls", 2.0),
                            _claim("a", b"id-1", "pulls")])
        assert [o.applied for o in first] == [[True], [True], [False]]  # per source's ids
        redis_plain.client().script_flush()  # as after a restart without persistence
        again = store.write([_claim("a", b"id-2", "pulls"), _claim("b", b"id-1", "pulls")])
        assert [o.applied for o in again] == [[True], [False]]  # sent again once, not twice
        assert store.load("a") == {("pulls", "x"): 2.0, ("pulls_dup", "x"): 1.0}
        assert store.load("b") == {("pulls", "x"): 2.0, ("pulls_dup", "x"): 1.0}
    finally:
        store.close()


def test_a_connection_the_server_closed_is_replaced_before_anything_is_sent(redis_plain):
    store = RedisStore(redis_plain.url + "/0", "r1")
    try:
        store.write([_claim("a", None, "builds")])
        redis_plain.client().client_kill_filter(_type="normal", skipme=True)
        store.ping()  # a dead connection found before the write, not by it
        assert [o.applied for o in store.write([_claim("a", None, "builds")])] == [[True]]
        assert store.load("a") == {("builds", "x"): 2.0}
    finally:
        store.close()


def test_set_up_with_a_password_and_a_database_and_a_refused_one(redis_factory):
    redis = redis_factory("--requirepass", "st4te-pw")
    client = BlockingRedis(parse_address(f"redis://:st4te-pw@{redis.address}/3"), 2.0)
    try:
        assert client.call(("SET", "k", "v"), ("GET", "k")) == [b"OK", b"v"]
        assert redis.client(password="st4te-pw", db=3).get("k") == b"v"
    finally:
        client.close()
    wrong = BlockingRedis(parse_address(f"redis://:nope@{redis.address}/3"), 2.0)
    with pytest.raises(StateError, match="Redis refused AUTH: WRONGPASS"):
        wrong.call(("PING",))


def test_a_record_raced_by_another_replica_is_read_again_and_counted_once(redis_plain):
    store = RedisStore(redis_plain.url + "/0", "r1")
    other = redis_plain.client()
    seen: list[object] = []

    def apply(old):
        seen.append(old)
        if len(seen) == 1:  # another replica writes the record between our read and write
            other.set("cachewatch:{app}:record:web-1", b'{"hits":30}')
        hits = 45 - (old or {"hits": 0})["hits"]
        return {"hits": 45}, {("hits", "users"): float(hits)}, hits

    try:
        outcome = store.write([Batch("app", [], update=Update("web-1", apply))])[0]
        assert seen == [None, {"hits": 30}]
        assert (outcome.counts, outcome.value) == ({("hits", "users"): 15.0}, 15)
        assert other.get("cachewatch:{app}:record:web-1") == b'{"hits":45}'
        assert 0 < other.ttl("cachewatch:{app}:record:web-1") <= 7 * 86400
        assert store.load("app") == {("hits", "users"): 15.0}
    finally:
        store.close()


def test_a_failed_update_leaves_nothing_watched(redis_plain):
    store = RedisStore(redis_plain.url + "/0", "r1")

    def broken(old):
        raise ValueError("bad record")

    try:
        with pytest.raises(ValueError, match="bad record"):
            store.write([Batch("app", [], update=Update("web-2", broken))])
        redis_plain.client().set("cachewatch:{app}:record:web-2", b"{}")
        calls: list[object] = []

        def grow(old):
            calls.append(old)
            return {"n": 1}, {("n", "x"): 1.0}, None

        outcome = store.write([Batch("app", [], update=Update("web-2", grow))])[0]
        assert outcome.counts == {("n", "x"): 1.0}
        assert calls == [{}]  # a WATCH left over would have failed the EXEC once: two calls
    finally:
        store.close()


def test_each_reply_times_out_at_its_own_deadline_on_one_watchdog():
    """A server that never answers: each awaited reply fails ``timeout`` after it was sent
    (the watchdog re-armed for the next one, not a timer per command), and the one after
    finds the oldest overdue and drops the connection."""
    import asyncio
    import time

    from cachewatch.state.base import StateError, StateTimeout
    from cachewatch.state.connections import FastRedis

    async def scenario() -> list[tuple[str, float]]:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(5)

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fast = FastRedis(parse_address(f"redis://127.0.0.1:{port}/0"), 0.5)
        started = time.monotonic()

        async def call(delay: float) -> tuple[str, float]:
            await asyncio.sleep(delay)
            try:
                await fast.call(("PING",))
            except StateError as exc:
                return type(exc).__name__, time.monotonic() - started
            return "answered", time.monotonic() - started

        try:
            outcomes = await asyncio.gather(call(0.0), call(0.25))
            outcomes.append(await call(0.0))  # the oldest is overdue: the line is dropped
        finally:
            fast.close()
            server.close()
        return outcomes

    (first, at_first), (second, at_second), (third, at_third) = asyncio.run(scenario())
    assert (first, second) == (StateTimeout.__name__, StateTimeout.__name__)
    assert 0.5 <= at_first < 0.7
    assert 0.75 <= at_second < 0.9  # its own deadline (sent at 0.25), not a timeout after 0.5
    assert third == StateError.__name__
    assert at_third < 1.0
