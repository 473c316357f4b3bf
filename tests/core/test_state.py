"""Durable state in process: what an exporter acknowledged is there after a restart, a redelivery
after it is a duplicate, and a store that fails leaves nothing half-written while /metrics goes on.

The SQLite stores here are real files; the restarts stop the app the way uvicorn does and open
the same file again. Crashes (kill -9) and Redis are in test_state_e2e.py.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import uuid

import httpx
import pytest

from cachewatch.config import ConfigError, load_settings
from cachewatch.state import StateError, StateInUse, parse_url
from cachewatch.state.sqlite import SqliteStore

from support import Exporter
from support import settings as exporter_settings

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PULLS = "cachewatch_registry_blob_pulls_total"
HITS = {"layer": "app", "cache": "users", "result": "hit"}


def receivers(url: str, **overrides: object):
    return exporter_settings([], **{"redis.enabled": False, "state.url": url, **overrides})


def event(event_id: str, repository: str = "team/app", size: int = 100) -> dict:
    return {"id": event_id, "action": "pull",
            "target": {"mediaType": LAYER, "size": size, "repository": repository},
            "request": {"method": "GET", "host": "r:5000"}}


def post_events(exporter: Exporter, *events: dict) -> httpx.Response:
    return httpx.post(exporter.url + "/webhooks/registry", json={"events": list(events)},
                      timeout=10)


def push(exporter: Exporter, instance: str, hits: int, started_at: float | None = None):
    body = {"instance": instance, "caches": [{"name": "users", "stats": {"hitCount": hits}}]}
    if started_at is not None:
        body["started_at"] = started_at
    return httpx.post(exporter.url + "/api/v1/caches", json=body, timeout=10)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


def test_what_was_acknowledged_survives_a_restart(exporter_factory, sqlite_url):
    """Registry events and their ids, builds and their ids, app instances' last values."""
    overrides = {"registry.max_repositories": 3}
    build = {"image": "svc", "id": "build-7", "summary": {
        "status": "success", "duration_seconds": 42.0, "lookups": 5, "hits": 4, "misses": 1}}
    first = exporter_factory(receivers(sqlite_url, **overrides))
    ids = [str(uuid.uuid4()) for _ in range(5)]
    assert post_events(first, *(event(i, size=10) for i in ids)).json()["accepted"] == 5
    post_events(first, event("b", "team/b"), event("c", "team/c"))
    assert httpx.post(first.url + "/api/v1/builds", json=build).status_code == 202
    push(first, "web-1", 100, started_at=1000.0)
    push(first, "web-1", 130, started_at=1000.0)
    first.stop()

    second = exporter_factory(receivers(sqlite_url, **overrides))
    m = second.scrape()
    assert m.value(PULLS, registry="r:5000", repository="team/app") == 5
    assert m.value("cachewatch_registry_pulled_bytes_total", registry="r:5000",
                   repository="team/app") == 50
    assert m.value("cachewatch_cache_lookups_total", **HITS) == 130
    assert m.value("cachewatch_state_info", backend="sqlite",
                   replica=f"{socket.gethostname()}:{second.port}") == 1
    # Redeliveries after the restart are duplicates; new events count.
    redelivered = post_events(second, *(event(i, size=10) for i in ids), event("new", size=10))
    assert redelivered.json() == {"accepted": 1, "duplicates": 5, "rejected": []}
    assert httpx.post(second.url + "/api/v1/builds", json=build).json()["duplicate"] is True
    # Restored label values keep their place under the cap: a new one folds into other.
    post_events(second, event("d", "team/d"), event("b2", "team/b"))
    # An app instance continues from its stored values: a resend adds 0, then +20; one the
    # store never saw is counted in full, however long ago it started.
    assert push(second, "web-1", 130, started_at=1000.0).status_code == 202
    push(second, "web-1", 150, started_at=1000.0)
    push(second, "web-2", 7, started_at=1.0)
    m = second.scrape()
    assert m.value(PULLS, registry="r:5000", repository="team/app") == 6
    assert m.value("cachewatch_registry_duplicate_events_total", source="distribution") == 5
    assert m.label_values(PULLS, "repository") == {"team/app", "team/b", "team/c", "other"}
    assert m.value(PULLS, registry="r:5000", repository="team/b") == 2
    assert m.value("cachewatch_docker_build_steps_total", image="svc", target="",
                   result="hit") == 4
    assert m.value("cachewatch_docker_build_duration_seconds_count", image="svc",
                   target="") == 1
    assert m.value("cachewatch_docker_build_duration_seconds_bucket", image="svc", target="",
                   le="60.0") == 1
    assert m.value("cachewatch_build_ingest_rejected_total", reason="duplicate") == 1
    assert m.value("cachewatch_cache_lookups_total", **HITS) == 150 + 7
    assert m.value("cachewatch_app_cache_resets_total", cache="users") == 0


def test_a_failing_store_answers_503_keeps_nothing_and_metrics_go_on(exporter_factory,
                                                                     tmp_path):
    """A real SQLite "database or disk is full": the file may not grow past its current pages."""
    path = tmp_path / "state.db"
    exporter = exporter_factory(receivers(f"sqlite:///{path}", **{"state.timeout": "300ms"}))
    assert post_events(exporter, event("before")).status_code == 200
    store = exporter.runtime.state.store
    connections = (store._db, store._fast)  # the writer's and the event loop's
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    for db in connections:
        db.execute(f"PRAGMA max_page_count = {pages}")
    many = [event(f"full-{i}", f"team/r{i}") for i in range(300)]  # needs new pages
    refused = post_events(exporter, *many)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "retry" in refused.json()["error"]
    m = exporter.scrape()  # /metrics still answers, with what was stored
    assert m.value("cachewatch_state_up") == 0
    assert m.value("cachewatch_state_errors_total", op="write") >= 1
    assert m.value("cachewatch_state_refused_total", reason="error") == 1
    assert sum(m.find(PULLS)) == 1
    for db in connections:
        db.execute("PRAGMA max_page_count = 1073741823")
    assert post_events(exporter, *many).json()["accepted"] == 300  # the sender's retry

    # Slow: someone holds the file's write lock (an operator's sqlite3 shell, say).
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    app = push(exporter, "web-1", 5)
    build = httpx.post(exporter.url + "/api/v1/builds", json={"image": "x", "summary": {
        "status": "success", "duration_seconds": 1, "lookups": 1, "hits": 1, "misses": 0}})
    assert (app.status_code, build.status_code) == (503, 503)
    assert exporter.get("/healthz").status_code == 200
    other.execute("ROLLBACK")
    assert push(exporter, "web-1", 5).status_code == 202
    m = exporter.scrape()
    assert sum(m.find(PULLS)) == 301
    assert m.value("cachewatch_cache_lookups_total", **HITS) == 5
    assert m.value("cachewatch_state_up") == 1
    rows = sqlite3.connect(path).execute(
        "SELECT count(*) FROM counters WHERE key LIKE ?", (f'["{PULLS}"%',)).fetchone()[0]
    assert rows == 301  # one series per repository, each written once


def test_one_file_belongs_to_one_process(tmp_path):
    path = tmp_path / "state.db"
    owner = SqliteStore(path)
    with pytest.raises(StateInUse, match="in use by cachewatch pid"):
        SqliteStore(path)
    owner.close()
    SqliteStore(path).close()  # released on close (and by the kernel on kill -9)


def test_state_urls_and_their_errors(tmp_path):
    assert parse_url("sqlite:///relative/state.db") == ("sqlite", "relative/state.db")
    assert parse_url("sqlite:////var/lib/cachewatch/state.db") == (
        "sqlite", "/var/lib/cachewatch/state.db")
    assert parse_url("redis://cache:6379/2") == ("redis", "redis://cache:6379/2")
    assert parse_url("memory://") == ("memory", "")
    for bad in ("sqlite://state.db", "postgres://db/x", "/tmp/state.db"):
        with pytest.raises(ConfigError) as caught:
            load_settings(**{"state.url": bad})
        assert "--state-url" in str(caught.value)
        assert "CACHEWATCH_STATE__URL" in str(caught.value)
    default = load_settings().state.url
    assert default.startswith("sqlite:////")
    assert default.endswith("/cachewatch/state.db")


def test_an_unwritable_state_location_is_refused_with_its_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match=str(blocker)):
        SqliteStore(blocker / "state.db")


def test_records_are_json_the_operator_can_read(exporter_factory, sqlite_url, tmp_path):
    exporter = exporter_factory(receivers(sqlite_url))
    push(exporter, "web-1", 3, started_at=5.0)
    row = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT value FROM records WHERE source = 'app' AND key = 'web-1'").fetchone()
    record = json.loads(row[0])
    assert record["started_at"] == 5.0
    assert record["caches"]["users"]["c"][0] == 3  # hits, the first of COUNTERS


def test_the_build_client_retries_a_503_with_the_same_id(exporter_factory, tmp_path):
    from cachewatch.sources.docker.buildlog import BuildSummary
    from cachewatch.sources.docker.ingest import send

    path = tmp_path / "state.db"
    exporter = exporter_factory(receivers(f"sqlite:///{path}", **{"state.timeout": "300ms"}))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the store is stuck for a moment
    threading.Timer(0.8, other.execute, ("ROLLBACK",)).start()
    summary = BuildSummary(
        image="svc", target="", format="buildkit-plain", status="success", duration_seconds=3.0,
        steps=2, lookups=2, hits=1, misses=1, executed_seconds=2.0, cached_seconds=0.0,
        rebuild_seconds=2.0, cache_buster="RUN make", cache_buster_step="[2/2] RUN make",
        error=None, records=[], truncated=False)
    assert send(summary, exporter.url, None) == f"sent to {exporter.url}"
    m = exporter.scrape()
    assert m.value("cachewatch_docker_builds_total", image="svc", target="",
                   status="success") == 1
    assert sum(m.value("cachewatch_state_refused_total", reason=reason)
               for reason in ("timeout", "error")) >= 1  # whichever came first: busy or late


def test_the_id_window_is_bounded_and_keeps_the_newest(tmp_path):
    from cachewatch.state import Batch, Change

    store = SqliteStore(tmp_path / "state.db")
    counts = {("cachewatch_registry_events_total", "distribution", "pull"): 1.0}

    def claim(event_id: int) -> bool:
        batch = Batch("registry", [Change(counts, event_id.to_bytes(8, "big"))], window=300)
        return store.write([batch])[0].applied[0]

    assert all(claim(i) for i in range(300))
    store.ping()  # the writer's periodic check: a full generation makes way for a new one
    assert all(claim(i) for i in range(300, 600))
    assert not claim(5)  # one window back: still a duplicate
    store.ping()  # the oldest generation (ids 0..299) goes
    tables = [f"seen_registry_{n}" for n in (0, 1)]
    kept = sum(store._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
    assert kept == 301  # 300..599, and 5 seen again
    assert not claim(599)
    assert not claim(450)
    assert claim(6)  # past the window: forgotten, counted again
    assert store.load("registry")[next(iter(counts))] == 601
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")  # the generations survive a restart
    again = Batch("registry", [Change(counts, (599).to_bytes(8, "big"))], window=300)
    assert reopened.write([again])[0].applied == [False]
    reopened.close()


def test_a_commit_that_raced_a_reload_is_read_back_not_added_twice(tmp_path):
    from cachewatch.state import Batch, Change, State

    state = State(SqliteStore(tmp_path / "state.db"), "r")
    ledger = state.ledger("registry")
    key = ("cachewatch_registry_events_total", "distribution", "pull")
    epoch = ledger.epoch
    state.store.write([Batch("registry", [Change({key: 1.0})])])
    ledger.load()  # a reload (after some failure) already holds that commit ...
    assert not ledger.apply({key: 1.0}, epoch)  # ... so its late apply is refused
    assert dict(ledger.items()) == {key: 1.0}
    assert ledger.apply({key: 1.0}, ledger.epoch)
    assert dict(ledger.items()) == {key: 2.0}
    state.close()
