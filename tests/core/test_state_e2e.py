"""Acknowledged means kept, tried the way an operator breaks things: ``kill -9`` of a real
``cachewatch serve`` during a stream of events and after it, two replicas on one real Redis
behind a retrying sender, and the Redis under them killed and restarted under load.

Every sender here retries what was not acknowledged (as a registry does) and sometimes
redelivers what was (an acknowledgement lost on the way): whatever happens, each distinct event
is counted exactly once in the sum over replicas.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Metrics, free_port, wait_until

pytestmark = pytest.mark.e2e

LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PULLS = "cachewatch_registry_blob_pulls_total"


class Serve:
    """One real ``cachewatch serve`` process (registry webhooks only) on a fixed port."""

    def __init__(self, folder: Path, state_url: str, replica: str | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "cachewatch", "serve", "--listen-address",
                     "127.0.0.1", "--port", str(self.port), "--disable-collector", "redis",
                     "--state-url", state_url, "--log-level", "warning",
                     *(["--replica-id", replica] if replica else [])]
        self.env = {**os.environ, "CACHEWATCH_STATE__TIMEOUT": "1s"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Serve:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.DEVNULL,
            stderr=(folder / f"serve-{self.port}-{self.starts}.log").open("wb"))
        wait_until(self._ready, timeout=30, interval=0.05)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.folder / f"serve-{self.port}-{self.starts}.log").read_text()
            raise RuntimeError(f"serve exited {self.proc.returncode}: {log[-2000:]}")
        return httpx.get(self.url + "/readyz", timeout=2).status_code == 200

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def metrics(self) -> Metrics:
        return Metrics(httpx.get(self.url + "/metrics", timeout=10).text)

    def pulls(self) -> float:
        return sum(self.metrics().find(PULLS))


@pytest.fixture
def serves(tmp_path: Path) -> Iterator[list[Serve]]:
    running: list[Serve] = []
    yield running
    for serve in running:
        serve.stop()


def envelope(ids: list[str]) -> dict:
    return {"events": [{"id": i, "action": "pull", "target": {
        "mediaType": LAYER, "size": 10, "repository": f"team/{i[-1]}"},
        "request": {"method": "GET", "host": "r:5000"}} for i in ids]}


class Sender:
    """Threads posting envelopes of unique events to any of ``urls``; each envelope is retried
    (on the next url) until acknowledged or ``give_up`` seconds passed, and with probability
    ``redeliver`` sent once more after its acknowledgement, as a lost answer would make it."""

    def __init__(self, urls: list[str], threads: int = 4, per_envelope: int = 5,
                 redeliver: float = 0.0, give_up: float = 60.0, limit: int = 4000) -> None:
        self.urls = urls
        self.per_envelope = per_envelope
        self.redeliver = redeliver
        self.give_up = give_up
        self.limit = limit  # envelopes per thread, a bound on the test's traffic
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.unacked: set[str] = set()
        self.refusals = 0
        self.redeliveries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def start(self) -> Sender:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.give_up + 10)

    def _run(self, number: int) -> None:
        rng = random.Random(number)
        with httpx.Client(timeout=3) as client:
            for count in range(self.limit):
                if self._stop.is_set():
                    return
                ids = [f"t{number}-{count}-{k}" for k in range(self.per_envelope)]
                with self._lock:
                    self.sent.update(ids)
                if not self._deliver(client, ids, rng):
                    with self._lock:
                        self.unacked.update(ids)
                    return
                if rng.random() < self.redeliver:
                    with self._lock:
                        self.redeliveries += len(ids)
                    self._deliver(client, ids, rng)

    def _deliver(self, client: httpx.Client, ids: list[str], rng: random.Random) -> bool:
        deadline = time.monotonic() + self.give_up
        start = rng.randrange(len(self.urls))
        attempt = 0
        while time.monotonic() < deadline:
            url = self.urls[(start + attempt) % len(self.urls)]
            attempt += 1
            try:
                answer = client.post(url + "/webhooks/registry", json=envelope(ids))
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 200:
                with self._lock:
                    self.acked.update(ids)
                return True
            with self._lock:
                self.refusals += 1
            time.sleep(0.05)
        return False

    def wait_for(self, acknowledged: int, timeout: float = 30) -> None:
        wait_until(lambda: len(self.acked) >= acknowledged, timeout=timeout)


def test_kill_9_during_a_stream_and_after_it_loses_no_acknowledged_event(tmp_path, serves):
    url = f"sqlite:///{tmp_path}/state.db"
    exporter = Serve(tmp_path, url).start()
    serves.append(exporter)
    sender = Sender([exporter.url], give_up=0.5).start()
    sender.wait_for(1500)
    exporter.kill()  # mid-stream: requests are in flight
    sender.stop()
    acked_before = set(sender.acked)
    in_flight = sender.sent - acked_before

    exporter.start()  # same file, same port
    counted = exporter.pulls()
    assert len(acked_before) <= counted <= len(acked_before) + len(in_flight)
    # The senders retry what was never acknowledged: every event ends up counted once.
    retry = Sender([exporter.url], threads=1, give_up=5)
    assert retry._deliver(httpx.Client(timeout=5), sorted(in_flight), random.Random(0))
    assert exporter.pulls() == len(sender.sent)

    # An app instance's last values and a build id, acknowledged just before the next kill.
    push = {"instance": "web-1", "started_at": 5.0,
            "caches": [{"name": "users", "stats": {"hitCount": 40, "missCount": 2}}]}
    build = {"image": "svc", "id": "b-1", "summary": {
        "status": "success", "duration_seconds": 3, "lookups": 2, "hits": 1, "misses": 1}}
    assert httpx.post(exporter.url + "/api/v1/caches", json=push).status_code == 202
    assert httpx.post(exporter.url + "/api/v1/builds", json=build).status_code == 202

    exporter.kill()  # after the stream: nothing in flight
    exporter.start()
    assert exporter.pulls() == len(sender.sent)
    push["caches"][0]["stats"]["hitCount"] = 50  # the instance continues: +10, not +50
    assert httpx.post(exporter.url + "/api/v1/caches", json=push).status_code == 202
    assert httpx.post(exporter.url + "/api/v1/builds", json=build).json()["duplicate"] is True
    m = exporter.metrics()
    assert m.value("cachewatch_cache_lookups_total", layer="app", cache="users",
                   result="hit") == 50
    assert m.value("cachewatch_docker_builds_total", image="svc", target="",
                   status="success") == 1
    everything = sorted(sender.sent)
    answer = httpx.post(exporter.url + "/webhooks/registry", json=envelope(everything[:1000]),
                        timeout=30).json()
    assert answer == {"accepted": 0, "duplicates": 1000, "rejected": []}  # redeliveries
    assert exporter.pulls() == len(sender.sent)


def test_kill_9_right_after_grouped_commits_keeps_each_acknowledged_event_once(tmp_path,
                                                                             serves):
    """Sixteen senders at once, one event per request: requests read in one turn of the loop
    share one SQLite commit, and each is answered only after it. Killed right after a stream
    of 2xx answers, the restarted exporter holds every acknowledged event exactly once: a
    redelivery of each is a duplicate, and the count is that of the events stored."""
    exporter = Serve(tmp_path, f"sqlite:///{tmp_path}/state.db").start()
    serves.append(exporter)
    sender = Sender([exporter.url], threads=16, per_envelope=1, give_up=0.5).start()
    sender.wait_for(2000)
    exporter.kill()  # answers were just sent, others in flight
    sender.stop()
    acked, in_flight = set(sender.acked), sorted(sender.sent - sender.acked)

    exporter.start()
    counted = exporter.pulls()
    with httpx.Client(timeout=30) as client:
        def post(ids: list[str]) -> dict:
            answers = [client.post(exporter.url + "/webhooks/registry",
                                   json=envelope(ids[at:at + 500])).json()
                       for at in range(0, len(ids), 500)]
            return {key: sum(a[key] for a in answers) for key in ("accepted", "duplicates")}

        assert post(sorted(acked)) == {"accepted": 0, "duplicates": len(acked)}
        stored_in_flight = post(in_flight)["duplicates"]
    assert counted == len(acked) + stored_in_flight
    assert exporter.pulls() == len(sender.sent)


def test_two_replicas_on_one_redis_count_each_event_once(tmp_path, serves, redis_factory):
    redis = redis_factory("--appendonly", "yes", "--appendfsync", "always")
    url = f"redis://{redis.address}/0"
    replicas = [Serve(tmp_path, url, replica=name).start() for name in ("r1", "r2")]
    serves.extend(replicas)
    sender = Sender([r.url for r in replicas], redeliver=0.2, give_up=20).start()
    sender.wait_for(1000)
    before = replicas[0].pulls()
    replicas[0].kill()  # one replica dies mid-stream; the sender retries on the other
    replicas[0].start()  # same replica id: it restores its own counters
    assert replicas[0].pulls() >= before
    sender.wait_for(len(sender.acked) + 1000)
    sender.stop()
    assert not sender.unacked
    assert sender.refusals > 0  # the killed replica was noticed, and retried around

    def total(name: str, **labels: str) -> float:
        return sum(sum(r.metrics().find(name, **labels)) for r in replicas)

    assert total(PULLS) == len(sender.sent)  # each event once in the sum over replicas
    assert total("cachewatch_registry_duplicate_events_total") >= sender.redeliveries
    both = [r.metrics() for r in replicas]
    assert all(m.value("cachewatch_state_up") == 1 for m in both)
    assert {m.label_values("cachewatch_state_info", "replica").pop() for m in both} == \
        {"r1", "r2"}
    assert all(sum(m.find(PULLS)) > 0 for m in both)  # both did count


def test_redis_killed_and_restarted_under_load(tmp_path, serves, redis_factory):
    redis = redis_factory("--appendonly", "yes", "--appendfsync", "always")
    url = f"redis://{redis.address}/0"
    replicas = [Serve(tmp_path, url, replica=name).start() for name in ("r1", "r2")]
    serves.extend(replicas)
    sender = Sender([r.url for r in replicas], redeliver=0.1, give_up=30).start()
    sender.wait_for(800)
    redis.stop()  # SIGKILL: the store is gone under load
    down = wait_until(lambda: (m := replicas[0].metrics()).value("cachewatch_state_up") == 0
                      and m, timeout=15)
    assert sum(down.find(PULLS)) > 0  # /metrics answers with what it has
    refused_at = sender.refusals
    wait_until(lambda: sender.refusals > refused_at + 10, timeout=15)  # 503s, retried
    redis.start()  # same port, same folder: the append-only file brings everything back
    sender.wait_for(len(sender.acked) + 800, timeout=60)
    sender.stop()
    assert not sender.unacked
    wait_until(lambda: all(r.metrics().value("cachewatch_state_up") == 1 for r in replicas),
               timeout=15)
    assert sum(r.pulls() for r in replicas) == len(sender.sent)
    refused = sum(r.metrics().value("cachewatch_state_refused_total", reason=reason)
                  for r in replicas for reason in ("error", "timeout", "loading"))
    assert refused > 0


def test_redis_state_with_a_password_and_a_database_of_its_own(exporter_factory, redis_factory):
    from support import settings as exporter_settings

    redis = redis_factory("--requirepass", "st4te-pw")
    url = f"redis://:st4te-pw@{redis.address}/2"
    overrides = {"redis.enabled": False, "state.url": url, "state.replica_id": "one"}
    first = exporter_factory(exporter_settings([], **overrides))
    answer = httpx.post(first.url + "/webhooks/registry", json=envelope(["a-1", "b-2"]))
    assert answer.json()["accepted"] == 2
    first.stop()
    second = exporter_factory(exporter_settings([], **overrides))
    assert sum(second.scrape().find(PULLS)) == 2
    again = httpx.post(second.url + "/webhooks/registry", json=envelope(["a-1", "c-3"]))
    assert again.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    client = redis.client(password="st4te-pw", db=2)
    assert client.exists("cachewatch:{registry}:counters:one")
    assert client.zcard("cachewatch:{registry}:seen") == 3
    assert redis.client(password="st4te-pw", db=0).dbsize() == 0  # nothing outside db 2


def test_a_hung_redis_gets_503_quickly_and_metrics_keep_answering(exporter_factory,
                                                                  redis_factory):
    from support import settings as exporter_settings

    redis = redis_factory()
    exporter = exporter_factory(exporter_settings([], **{
        "redis.enabled": False, "state.url": f"redis://{redis.address}/0",
        "state.timeout": "300ms"}))
    post = lambda ids: httpx.post(exporter.url + "/webhooks/registry",  # noqa: E731
                                  json=envelope(ids), timeout=10)
    assert post(["ok-1"]).status_code == 200
    redis.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        started = time.monotonic()
        refused = [post([f"hung-{i}"]) for i in range(3)]
        assert [r.status_code for r in refused] == [503, 503, 503]
        assert time.monotonic() - started < 5  # each within about state.timeout
        scraped = time.monotonic()
        m = exporter.scrape()  # answers from what it has, at once
        assert time.monotonic() - scraped < 1
        assert sum(m.find(PULLS)) == 1
        wait_until(lambda: exporter.scrape().value("cachewatch_state_up") == 0, timeout=10)
    finally:
        redis.resume()
    wait_until(lambda: post(["hung-0", "hung-1", "hung-2"]).status_code == 200, timeout=15)
    wait_until(lambda: exporter.scrape().value("cachewatch_state_up") == 1, timeout=10)
    assert sum(exporter.scrape().find(PULLS)) == 4  # each once, whatever landed late


def test_redis_state_over_tls_takes_the_fast_path(exporter_factory, redis_factory, tls_files):
    from support import settings as exporter_settings

    redis = redis_factory(
        "--tls-cert-file", str(tls_files["cert"]), "--tls-key-file", str(tls_files["key"]),
        "--tls-ca-cert-file", str(tls_files["ca"]), "--tls-auth-clients", "no", tls=True)
    url = f"rediss://{redis.address}/0?ssl_ca_certs={tls_files['ca']}"
    exporter = exporter_factory(exporter_settings([], **{
        "redis.enabled": False, "state.url": url}))
    answer = httpx.post(exporter.url + "/webhooks/registry", json=envelope(["t-1", "t-2"]))
    assert answer.json()["accepted"] == 2
    fast = exporter.runtime.state.store._fast
    assert fast._protocol is not None  # claimed on the loop's own TLS connection
    assert fast._protocol.transport.get_extra_info("ssl_object") is not None
    assert sum(exporter.scrape().find(PULLS)) == 2
