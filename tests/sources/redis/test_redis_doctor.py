"""``cachewatch doctor redis://...`` against real redis-servers made to show each condition, and a
healthy one that shows none: rules, evidence, exit codes, the bounded sample, a replica, TLS."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from cachewatch.cli import build_cli

from support import settings, wait_until

pytestmark = pytest.mark.e2e  # every test here drives real redis-servers

CLI = build_cli()
HEALTHY = ("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")


def doctor(*args: str) -> tuple[int, list[dict], str]:
    """Exit code, findings (JSON) and stderr of ``cachewatch doctor ARGS --json``."""
    result = CliRunner().invoke(CLI, ["doctor", *args, "--json", "--window", "0.2",
                                      "--pings", "5"])
    findings = json.loads(result.stdout) if result.stdout.strip() else []
    return result.exit_code, findings, result.stderr


def rules(findings: list[dict]) -> set[str]:
    return {f["rule"] for f in findings}


def test_a_healthy_cache_has_no_findings_and_exits_0(redis_factory):
    server = redis_factory(*HEALTHY)
    client = server.client()
    for i in range(300):
        client.set(f"user:{i}", "x" * 100, ex=3600)
    for _ in range(3):
        for i in range(300):
            client.get(f"user:{i}")
    code, findings, err = doctor(server.url)
    assert (code, findings) == (0, [])
    assert "no cache problems found (300 keys sampled)" in err


def test_a_2mb_cache_under_load_is_too_small_and_sized_from_the_eviction_rate(redis_factory):
    server = redis_factory("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    client = server.client()
    for i in range(300):
        client.set(f"page:{i}", b"x" * 10_000)
    stop = threading.Event()

    def load() -> None:  # the load goes on while the doctor measures its window
        i = 0
        while not stop.is_set():
            client.set(f"page:{300 + i}", b"x" * 10_000)
            i += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        result = CliRunner().invoke(CLI, ["doctor", server.url, "--json", "--window", "1"])
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 1
    found = {f["rule"]: f for f in json.loads(result.stdout)}
    small = found["cache-too-small"]
    assert small["evidence"]["evicted_keys"] > 0
    assert small["evidence"]["maxmemory"] == 2 * 1024 * 1024
    assert small["evidence"]["evictions_per_second"] > 0
    assert "evictions/s" in small["fix"]
    assert "maxmemory-unset" not in found
    assert "noeviction" not in found


def test_after_the_load_stopped_cumulative_evictions_at_maxmemory_are_enough(redis_factory):
    server = redis_factory("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    client = server.client()
    for i in range(400):
        client.set(f"page:{i}", b"x" * 10_000)
    code, findings, _ = doctor(server.url)
    assert code == 1
    small = next(f for f in findings if f["rule"] == "cache-too-small")
    assert small["evidence"]["evictions_per_second"] == 0
    assert "half as much again" in small["fix"]


def test_no_maxmemory_and_a_noeviction_limit_are_named_apart(redis_factory):
    unset = redis_factory()
    assert rules(doctor(unset.url)[1]) == {"maxmemory-unset"}
    limited = redis_factory("--maxmemory", "64mb")  # the default policy is noeviction
    code, findings, _ = doctor(limited.url)
    assert (code, rules(findings)) == (1, {"noeviction"})
    assert findings[0]["evidence"]["maxmemory_policy"] == "noeviction"


def test_volatile_lru_with_keys_without_ttl_cannot_evict(redis_factory):
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru")
    client = server.client()
    for i in range(90):
        client.set(f"forever:{i}", i)
    for i in range(10):
        client.set(f"session:{i}", i, ex=600)
    code, findings, _ = doctor(server.url)
    assert (code, rules(findings)) == (1, {"volatile-without-ttl"})
    assert findings[0]["evidence"] | {} == {"maxmemory_policy": "volatile-lru", "keys": 100,
                                           "keys_with_ttl": 10}
    assert "90%" in findings[0]["message"]


def test_keys_expiring_before_they_are_read_again_dominate_the_misses(redis_factory):
    server = redis_factory(*HEALTHY)
    client = server.client()
    for i in range(150):
        client.set(f"quote:{i}", i, px=1)  # one TTL for all, far shorter than the reuse
    time.sleep(0.05)
    for i in range(150):
        assert client.get(f"quote:{i}") is None
    code, findings, _ = doctor(server.url)
    assert (code, rules(findings)) == (1, {"expirations-dominate-misses"})
    evidence = findings[0]["evidence"]
    assert evidence["keyspace_misses"] == 150
    assert evidence["expired_keys"] == 150


def test_hot_keys_under_lfu_are_named_from_object_freq(redis_factory):
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lfu")
    client = server.client()
    for i in range(200):
        client.set(f"item:{i}", i)
    pipe = client.pipeline(transaction=False)
    for _ in range(10_000):
        pipe.get("item:7")
        pipe.get("item:42")
    pipe.execute()
    code, findings, _ = doctor(server.url)
    assert (code, rules(findings)) == (1, {"hot-keys"})
    assert set(findings[0]["evidence"]["keys"]) == {"item:7", "item:42"}
    assert findings[0]["evidence"]["sampled"] == 200


def test_big_keys_by_memory_usage_on_a_bounded_sample(redis_factory):
    server = redis_factory(*HEALTHY)
    client = server.client()
    client.set("report:big", b"x" * (2 << 20))
    for i in range(2000):
        client.set(f"small:{i}", i, ex=3600)
    code, findings, _ = doctor(server.url, "--sample", "3000")
    assert (code, rules(findings)) == (1, {"big-keys"})
    assert findings[0]["evidence"]["keys"] == ["report:big"]
    before = client.info("commandstats")
    code, findings, _ = doctor(server.url, "--sample", "500", "--big-key-bytes", "1")
    assert findings[0]["evidence"]["sampled"] == 500  # at most --sample keys
    after = client.info("commandstats")
    assert after["cmdstat_memory|usage"]["calls"] - before["cmdstat_memory|usage"]["calls"] \
        == 500
    assert "cmdstat_keys" not in after
    assert "cmdstat_monitor" not in after


class SlowLink:
    """A TCP proxy that holds every server answer for ``delay`` seconds: a slow network."""

    def __init__(self, port: int, delay: float) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target, self.delay = port, delay
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.delay),
                             daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
        while data := source.recv(65536):
            time.sleep(delay)
            sink.sendall(data)


def test_a_slow_network_in_front_of_a_fast_redis_is_named(redis_factory):
    server = redis_factory(*HEALTHY)
    link = SlowLink(server.port, 0.06)
    try:
        code, findings, _ = doctor(f"redis://127.0.0.1:{link.port}")
    finally:
        link.listener.close()
    assert (code, rules(findings)) == (1, {"network-latency"})
    evidence = findings[0]["evidence"]
    assert evidence["client_p99_seconds"] >= 0.06
    assert evidence["server_p99_seconds"] < 0.01


def test_the_sample_is_read_from_a_replica_when_one_is_given(redis_factory):
    primary = redis_factory(*HEALTHY)
    primary.client().set("report:big", b"x" * (2 << 20))
    replica = redis_factory(*HEALTHY, "--replicaof", "127.0.0.1", str(primary.port))
    wait_until(lambda: replica.client().get("report:big") is not None)
    code, findings, _ = doctor(primary.url, "--replica", replica.url)
    assert (code, rules(findings)) == (1, {"big-keys"})
    assert "cmdstat_memory|usage" not in primary.client().info("commandstats")
    assert replica.client().info("commandstats")["cmdstat_memory|usage"]["calls"] == 1


def test_auth_tls_and_errors_exit_2_without_showing_the_password(redis_factory, tls_files,
                                                                 tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-Doctor-Pw\n")
    server = redis_factory(*HEALTHY, "--requirepass", "s3cret-Doctor-Pw", "--port", "0",
                           "--tls-cert-file", str(tls_files["cert"]), "--tls-key-file",
                           str(tls_files["key"]), "--tls-ca-cert-file", str(tls_files["ca"]),
                           "--tls-auth-clients", "no", tls=True)
    assert server.url.startswith("rediss://")
    code, findings, _ = doctor(server.url, "--password-file", str(secret), "--tls-ca-file",
                               str(tls_files["ca"]))
    assert (code, findings) == (0, [])
    code, _, err = doctor(server.url, "--tls-ca-file", str(tls_files["ca"]))
    assert code == 2
    assert "(auth)" in err
    code, _, err = doctor("redis://127.0.0.1:1")
    assert code == 2
    assert "(connection)" in err
    assert "s3cret" not in err


def test_the_exporter_reports_the_info_rules_as_a_metric_and_on_the_status_page(
        redis_factory, exporter_factory):
    volatile = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru")
    volatile.client().set("forever", 1)
    healthy = redis_factory(*HEALTHY)
    exporter = exporter_factory(settings([f"sessions={volatile.url}", f"ok={healthy.url}"]))
    metrics = exporter.scrape()
    found = {rule: metrics.value("cachewatch_redis_findings", cache="sessions", rule=rule)
             for rule in metrics.label_values("cachewatch_redis_findings", "rule")}
    assert found == {"cache-too-small": 0, "maxmemory-unset": 0, "noeviction": 0,
                     "volatile-without-ttl": 1, "expirations-dominate-misses": 0}
    assert not [v for v in metrics.find("cachewatch_redis_findings", cache="ok") if v]
    # the same rule, the same verdict, as the doctor's
    assert rules(doctor(volatile.url)[1]) == {"volatile-without-ttl"}
    page = exporter.get("/").text
    redis_section = page.split("<h2>Redis</h2>", 1)[1].split("</section>", 1)[0]
    assert "<li><b>sessions</b>: volatile-without-ttl</li>" in redis_section
    assert "<b>ok</b>" not in redis_section
    # the command as typed gives the evidence: the doctor's own argument form
    assert "<code>cachewatch doctor redis://HOST:PORT</code> gives the evidence" in redis_section
