"""The Memcached source without a live server: stats parsing, settings, caps, /probe targets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cachewatch.config import ConfigError, load_settings
from cachewatch.http.allowlist import AllowList
from cachewatch.runtime import Runtime
from cachewatch.source import ProbeTargetError
from cachewatch.sources.memcached.client import (
    Connections,
    ProtocolError,
    classify,
    parse_stats,
)
from cachewatch.sources.memcached.collector import MemcachedCollector, families
from cachewatch.sources.memcached.settings import (
    MemcachedSettings,
    MemcachedTarget,
    TargetAddressError,
    normalise_address,
)

# A real memcached 1.6.18's stats reply (fixtures/README.md says how it was captured).
CAPTURED = Path(__file__).parent / "fixtures" / "stats-1.6.18.txt"


def _captured() -> dict[str, str]:
    return parse_stats(CAPTURED.read_bytes().split(b"\r\n")[:-2])


def _samples(stats: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families("main", stats) for s in family.samples}


def test_the_captured_stats_become_the_contract_families():
    samples = _samples(_captured())
    core = (("cache", "main"), ("layer", "memcached"))
    one = (("cache", "main"),)
    assert samples == {
        ("cachewatch_cache_lookups_total", (*core, ("result", "hit"))): 80,
        ("cachewatch_cache_lookups_total", (*core, ("result", "miss"))): 30,
        ("cachewatch_cache_evictions_total", core): 2549,
        ("cachewatch_cache_entries", core): 551,
        ("cachewatch_cache_bytes", core): 949258,
        ("cachewatch_memcached_limit_bytes", one): 2 << 20,
        ("cachewatch_memcached_items_stored_total", one): 3120,
        ("cachewatch_memcached_evicted_unfetched_total", one): 2549,
        ("cachewatch_memcached_expired_unfetched_total", one): 10,
        ("cachewatch_memcached_connections", one): 2,
        ("cachewatch_memcached_info", (("cache", "main"), ("version", "1.6.18"))): 1,
    }


def test_a_reply_without_get_hits_is_not_memcached():
    with pytest.raises(ValueError, match="not a memcached server"):
        families("main", {"version": "1.6.18"})


@pytest.mark.parametrize("line", [b"STAT onlyname", b"VALUE k 0 1", b""])
def test_a_line_that_is_not_a_stat_is_a_protocol_error(line):
    with pytest.raises(ProtocolError, match="not a stats line"):
        parse_stats([b"STAT pid 1", line])
    assert classify(ProtocolError("x"))[0] == "protocol"


@pytest.mark.parametrize(("raw", "address"), [
    ("cache1", "cache1:11211"),
    ("cache1:11212", "cache1:11212"),
    (" 10.0.0.5:11211 ", "10.0.0.5:11211"),
    ("[::1]:11300", "[::1]:11300"),
    ("unix:///run/memcached.sock", "unix:///run/memcached.sock"),
])
def test_addresses_are_normalised(raw, address):
    assert normalise_address(raw) == address


@pytest.mark.parametrize(("raw", "message"), [
    ("", "empty"),
    ("memcached://h:1", "no URL scheme"),
    ("user:s3cret@h:11211", "takes no credentials"),
    ("h:notaport", "is not host:port"),
    ("h:11211/x", "is not host:port"),
    ("unix://relative.sock", "absolute socket path"),
])
def test_bad_addresses_say_what_to_write_and_never_echo_a_password(raw, message):
    with pytest.raises(TargetAddressError, match=message) as caught:
        normalise_address(raw)
    assert "s3cret" not in str(caught.value)


def test_off_by_default_and_one_local_target_once_enabled():
    settings = load_settings(**{"state.url": "memory://"})
    assert settings.memcached.enabled is False
    assert [t.address for t in settings.memcached.targets] == ["127.0.0.1:11211"]
    assert settings.memcached.targets[0].name == "127.0.0.1:11211"  # the address is the label


def test_targets_by_flag_env_and_file(tmp_path, monkeypatch):
    config = tmp_path / "cachewatch.yml"
    config.write_text("memcached:\n  enabled: true\n  timeout: 500ms\n"
                      "  targets: [{name: file, address: 'h1'}]\n")
    by_file = load_settings(config, **{"state.url": "memory://"}).memcached
    assert (by_file.enabled, by_file.timeout) == (True, 0.5)
    assert [(t.name, t.address) for t in by_file.targets] == [("file", "h1:11211")]
    monkeypatch.setenv("CACHEWATCH_MEMCACHED__TARGETS", '["env=h2:11300"]')
    by_env = load_settings(config, **{"state.url": "memory://"}).memcached
    assert [(t.name, t.address) for t in by_env.targets] == [("env", "h2:11300")]
    by_flag = load_settings(config, **{"state.url": "memory://",
                                       "memcached.targets": ["flag=h3:1", "h4:2"]}).memcached
    assert [(t.name, t.address) for t in by_flag.targets] == [("flag", "h3:1"), ("h4:2", "h4:2")]


@pytest.mark.parametrize(("values", "message"), [
    ({"memcached.targets": ["a=h:1", "a=h:2"]}, "two targets are named 'a'"),
    ({"memcached.targets": ["u:p@h:1"]}, "takes no credentials"),
    ({"memcached.timeout": "0s"}, "memcached.timeout: must be more than 0"),
    ({"memcached.max_reply_bytes": 100}, "memcached.max_reply_bytes: must be at least"),
])
def test_bad_settings_stop_start_up_naming_the_setting(values, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**{"state.url": "memory://", **values})
    assert "--memcached-" in str(caught.value) or "CACHEWATCH_MEMCACHED" in str(caught.value)


def _collector(*targets: str) -> MemcachedCollector:
    settings = MemcachedSettings(targets=[MemcachedTarget.model_validate(t) for t in targets])
    return MemcachedCollector(settings.targets, 1.0, Runtime(), settings=settings)


def test_probe_reads_configured_targets_by_name_or_address_and_allowed_hosts_only():
    collector = _collector("main=10.1.2.3:11211")
    assert collector.for_probe("main", AllowList()).targets() == ["main"]
    assert collector.for_probe("10.1.2.3", AllowList()).targets() == ["main"]
    with pytest.raises(ProbeTargetError, match=r"probe\.allow does not list"):
        collector.for_probe("10.9.9.9:11211", AllowList())
    assert collector.for_probe("10.9.9.9:11211", AllowList(["10.0.0.0/8"])).targets() == \
        ["10.9.9.9:11211"]
    with pytest.raises(ProbeTargetError, match=r"configured: main\)"):
        collector.for_probe("other", AllowList(["*"]))
    with pytest.raises(ProbeTargetError, match="only as configured targets"):
        collector.for_probe("unix:///tmp/m.sock", AllowList(["*"]))
    with pytest.raises(ProbeTargetError, match="takes no credentials"):
        collector.for_probe("u:p@10.9.9.9:1", AllowList(["*"]))


async def _serve(reply: bytes) -> tuple[asyncio.Server, MemcachedTarget]:
    """A real socket server answering every request with ``reply`` (a hostile peer)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n")
        writer.write(reply)
        await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, MemcachedTarget(address=f"127.0.0.1:{port}")


@pytest.mark.parametrize(("reply", "message"), [
    (b"x" * 20_000, "a reply line over 4096 bytes"),  # a line that never ends
    (b"STAT k v\r\n" * 10_000, "reply over 65536 bytes"),  # an endless stats
    (b"ERROR\r\n", "memcached answered ERROR"),
    (b"SERVER_ERROR out of memory\r\n", "SERVER_ERROR out of memory"),
])
def test_a_peer_cannot_make_the_client_buffer_past_its_caps(reply, message):
    async def run() -> None:
        server, target = await _serve(reply)
        connections = Connections()
        try:
            with pytest.raises(ProtocolError, match=message):
                await asyncio.wait_for(connections.stats(target), 5)
            # the broken connection is not reused
            assert not (await connections.connection(target)).broken
        finally:
            connections.close()
            server.close()

    asyncio.run(run())
