"""Who /probe may read (probe.allow), how much it reads (redis.max_reply_bytes), and that no
credential ever reaches an answer, an error or the log."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path

import pytest

from cachewatch.config import ConfigError, load_settings
from cachewatch.http.allowlist import AllowList
from cachewatch.sources.redis.targets import load_secrets

from support import HostileRedis, Metrics, free_port, rss_bytes, settings

UP = "cachewatch_collector_up"
ERRORS = "cachewatch_collector_errors_total"


@pytest.mark.parametrize(("entries", "host", "allowed"), [
    ([], "127.0.0.1", False),
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "11.1.2.3", False),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 is the same address
    (["10.0.0.0/8"], "10.1.2.3.example.com", False),  # a name is never matched to a network
    (["10.0.0.5"], "10.0.0.5", True),
    (["fd00::/8"], "[fd00::1]", True),
    (["*.cache.internal"], "redis-1.cache.internal", True),
    (["*.cache.internal"], "a.b.cache.internal", True),
    (["*.cache.internal"], "cache.internal", False),
    (["*.cache.internal"], "cache.internal.attacker.example", False),
    (["*.CACHE.internal"], "Redis.Cache.Internal.", True),  # case and a trailing dot
    (["redis-*.prod"], "redis-7.prod", True),
    (["*.cache.internal"], "10.0.0.1", False),
    (["*"], "anything.example", True),
    (["*"], "192.0.2.1", True),
])
def test_allow_list_matches_hosts_and_networks(entries, host, allowed):
    assert AllowList(entries).permits(host) is allowed


@pytest.mark.parametrize(("entry", "message"), [
    ("10.0.*", "looks like an address range; write a network like 10.0.0.0/8"),
    ("10.0.0.0/33", "is not a network"),
    ("redis?.prod", "is not a host pattern"),
    ("", "an empty entry"),
])
def test_bad_allow_entries_stop_start_up_with_the_fix(entry, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(**{"probe.allow": [entry]})
    assert message in str(caught.value)
    assert "probe.allow" in str(caught.value)


def test_the_removed_open_probe_setting_names_its_replacement():
    with pytest.raises(ConfigError) as caught:
        load_settings(**{"redis.allow_unlisted_probe_targets": True})
    text = str(caught.value)
    assert "redis.allow_unlisted_probe_targets was removed" in text
    assert "(--probe-allow, CACHEWATCH_PROBE__ALLOW" in text


def test_probe_allow_from_env_and_flag(monkeypatch):
    monkeypatch.setenv("CACHEWATCH_PROBE__ALLOW", '["10.0.0.0/8"]')
    assert load_settings().probe.allow_list().permits("10.9.9.9")
    assert load_settings(**{"probe.allow": ["*.x"]}).probe.allow == ["*.x"]  # flag wins


def test_probe_refuses_unlisted_hosts_without_connecting(exporter_factory):
    hostile = HostileRedis(lambda: iter([b"+PONG\r\n"]))
    try:
        exporter = exporter_factory(settings([], **{"probe.allow": ["10.0.0.0/8",
                                                                    "*.cache.internal"]}))
        response = exporter.get("/probe", params={"target": hostile.address})
        assert response.status_code == 400
        assert "probe.allow does not list its host (probe.allow: 10.0.0.0/8, " \
            "*.cache.internal)" in response.text
        assert hostile.connections == 0  # refused before any connection: no port-scan oracle
    finally:
        hostile.stop()


def test_probe_by_host_pattern_reads_the_address(exporter_factory):
    hostile = HostileRedis(lambda: iter([b"-ERR not a real redis\r\n"]))
    try:
        exporter = exporter_factory(settings([], **{"probe.allow": ["localhost"]}))
        port = hostile.address.rsplit(":", 1)[1]
        metrics = exporter.scrape(f"/probe?target=redis://localhost:{port}")
        assert metrics.value(UP, collector="redis", target=f"localhost:{port}") == 0
        assert hostile.connections == 1
    finally:
        hostile.stop()


def _huge_bulk():
    yield b"$524288000\r\n"  # declares 500 MB
    yield from itertools.repeat(b"x" * 65536)


def _endless_line():
    yield b"+"
    yield from itertools.repeat(b"y" * 65536)  # a simple string that never ends


def _endless_array():
    yield b"*100000000\r\n"
    yield from itertools.repeat(b"$1\r\nz\r\n" * 8192)


@pytest.mark.parametrize("reply", [_huge_bulk, _endless_line, _endless_array])
def test_a_hostile_server_cannot_make_a_probe_read_more_than_the_cap(exporter_factory, reply):
    """Before the cap a fake Redis answering a 500 MB INFO took RSS from 84 MB to 824 MB."""
    hostile = HostileRedis(reply)
    peak = [rss_bytes()]
    baseline = peak[0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        exporter = exporter_factory(settings([], **{"probe.allow": ["127.0.0.1"],
                                                    "redis.timeout": 3.0}))
        started = time.monotonic()
        metrics = exporter.scrape(f"/probe?target={hostile.address}")
        elapsed = time.monotonic() - started
    finally:
        done.set()
        sampler.join()
        hostile.stop()
    assert metrics.value(UP, collector="redis", target=hostile.address) == 0
    assert metrics.value(ERRORS, collector="redis", target=hostile.address,
                         reason="protocol") == 1
    assert elapsed < 3.0, elapsed  # refused at the cap, not at the deadline
    # 1 MiB cap, plus what the kernel's loopback buffers took before the client hung up
    assert hostile.sent < 24 << 20, hostile.sent
    assert peak[0] - baseline < 64 << 20, (peak[0] - baseline) >> 20


@pytest.mark.e2e  # waits on a real deadline: in `make test`, out of the fast loop
def test_a_trickling_server_is_cut_off_at_the_deadline_not_per_byte(exporter_factory):
    def trickle():
        yield b"$4096\r\n"
        for _ in range(4096):
            time.sleep(0.05)  # each byte well within the socket timeout
            yield b"t"

    hostile = HostileRedis(trickle)
    try:
        exporter = exporter_factory(settings([], **{"probe.allow": ["127.0.0.1"],
                                                    "redis.timeout": 0.3}))
        metrics = exporter.scrape(f"/probe?target={hostile.address}")
        assert metrics.value(ERRORS, collector="redis", target=hostile.address,
                             reason="timeout") == 1
        # the worker gave up after about the timeout, not after 4096 x 50 ms
        time.sleep(0.5)
        sent = hostile.sent
        time.sleep(0.3)
        assert hostile.sent - sent <= 2, "the client kept reading after its deadline"
    finally:
        hostile.stop()


SECRET = "hunter2-Secret"


def test_probe_answers_and_logs_hold_no_credential(exporter_factory, caplog):
    caplog.set_level(logging.DEBUG)
    exporter = exporter_factory(settings([], **{"probe.allow": ["*"]}))
    for target in (f"redis://user:{SECRET}@127.0.0.1:6379", f"redis://:{SECRET}@127.0.0.1:6379",
                   f"user:{SECRET}@127.0.0.1:notaport",
                   f"redis://user:{SECRET}@127.0.0.1:99999999",
                   f"rediss://u:{SECRET}@host/abc", f"user:{SECRET}@nohostport"):
        response = exporter.get("/probe", params={"target": target})
        assert response.status_code == 400, target
        assert SECRET not in response.text, target
    server_side = [r.getMessage() + str(vars(r)) for r in caplog.records
                   if r.name.startswith(("cachewatch", "uvicorn"))]
    assert server_side
    assert not [line for line in server_side if SECRET in line]


@pytest.mark.parametrize("target", [
    f"user:{SECRET}@127.0.0.1:notaport",
    f"redis://user:{SECRET}@127.0.0.1:99999999",
    f"redis://:{SECRET}@host/abc",
    f"sessions=user:{SECRET}@host:bad",
])
def test_start_up_errors_hold_no_credential(target):
    with pytest.raises(ConfigError) as caught:
        load_settings(**{"redis.targets": [target]})
    assert "is not a valid address" in str(caught.value) or "database number" in str(
        caught.value)
    assert SECRET not in str(caught.value)


def test_yaml_errors_in_secret_bearing_files_show_the_position_not_the_line(tmp_path: Path):
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(f"redis://h:6379: {SECRET}: [\n")
    with pytest.raises(ConfigError) as caught:
        load_secrets(secrets)
    assert "at line 1, column" in str(caught.value)
    assert SECRET not in str(caught.value)
    config = tmp_path / "cachewatch.yml"
    config.write_text(f"redis:\n  targets:\n    - {{url: redis://h:1, password: {SECRET}: x}}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "is not valid YAML" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_bad_token_value_is_not_repeated_in_the_error():
    with pytest.raises(ConfigError) as caught:
        load_settings(**{"app.token": {"not": SECRET}})
    assert "app.token" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_configured_target_with_a_password_shows_it_nowhere(exporter_factory, caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    exporter = exporter_factory(settings([f"main=redis://:{SECRET}@127.0.0.1:{port}"]))
    metrics = Metrics(exporter.get("/probe", params={"target": "main"}).text)
    assert metrics.value(UP, collector="redis", target="main") == 0  # connection refused
    for path in ("/metrics", "/", "/probe?target=main", "/readyz"):
        assert SECRET not in exporter.get(path).text
    logged = [r.getMessage() + str(vars(r)) for r in caplog.records
              if r.name.startswith("cachewatch")]
    assert any("reading redis targets" in line for line in logged)
    assert any("target is down" in line for line in logged)
    assert not [line for line in logged if SECRET in line]
