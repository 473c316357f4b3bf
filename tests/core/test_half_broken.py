"""Half-broken state and configuration (issue 27): a config that is a bomb fails at once, a
deleted or full state file is seen (503, ``state_up`` 0, a log line a minute), and label caps
say when they bite and let go of names nobody sends any more.

The Redis store paused past ``state.timeout`` (503 for events it then stores; redeliveries
counted once) is proven in ``test_state_e2e.py::test_a_hung_redis_gets_503_quickly...``.
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from cachewatch.config import ConfigError, load_settings
from cachewatch.metrics.cardinality import OTHER, LabelCap
from cachewatch.state import MemoryStore
from cachewatch.state.base import Batch, Update

from support import settings

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PULLS = "cachewatch_registry_image_pulls_total"
OVERFLOW = "cachewatch_label_overflow_total"


def envelope(*ids: str, repository: str = "team/app") -> dict:
    return {"events": [{"id": i, "action": "pull", "target": {
        "repository": repository, "mediaType": MANIFEST}} for i in ids]}


def post(exporter, body: dict) -> httpx.Response:
    return httpx.post(exporter.url + "/webhooks/registry", json=body, timeout=10)


# --- 5. config cannot be a bomb --------------------------------------------------------------
BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
                  *(f"{chr(98 + n)}: &{chr(98 + n)} [" + ", ".join([f"*{chr(97 + n)}"] * 9) + "]"
                    for n in range(8))]) + "\n"


def test_a_yaml_alias_bomb_fails_in_milliseconds_with_one_line(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(BOMB)
    assert len(BOMB) < 1024
    began = time.monotonic()
    with pytest.raises(ConfigError) as failed:
        load_settings(path)
    assert time.monotonic() - began < 0.5
    message = str(failed.value)
    assert "\n" not in message
    assert "aliases (*name) are not allowed" in message
    assert "line 2" in message


@pytest.mark.parametrize(("key", "flag"), [("redis.probe_interval", "--redis-probe-interval"),
                                           ("state.timeout", None)])
def test_a_duration_below_the_floor_is_refused_naming_the_setting(key, flag):
    with pytest.raises(ConfigError) as failed:
        load_settings(**{key: "0.000000001"})
    message = str(failed.value)
    assert f"{key}: 1e-09s is below the floor of 1ms" in message
    if flag:
        assert flag in message
    assert load_settings(**{"redis.probe_interval": 0}).redis.probe_interval == 0  # off


# --- 6. a broken store is seen -----------------------------------------------------------------
def test_a_state_file_deleted_while_running_is_seen_not_written_into(exporter_factory,
                                                                     tmp_path, caplog):
    path = tmp_path / "state.db"
    exporter = exporter_factory(settings([], **{"redis.enabled": False,
                                                "state.url": f"sqlite:///{path}"}))
    assert post(exporter, envelope("before")).json()["accepted"] == 1
    for leftover in tmp_path.glob("state.db*"):
        if not leftover.name.endswith(".lock"):
            leftover.unlink()
    answers = [post(exporter, envelope(f"after-{n}")).status_code for n in range(5)]
    assert answers == [503] * 5
    metrics = exporter.scrape()
    assert metrics.value("cachewatch_state_up") == 0
    assert sum(metrics.find(PULLS)) == 1  # nothing was acknowledged into the lost file
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "deleted or replaced while running" in errors[0].getMessage()


def test_a_full_disk_keeps_state_up_at_0_and_logs_once(exporter_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, "cachewatch.state")
    exporter = exporter_factory(settings([], **{"redis.enabled": False,
                                                "state.url": f"sqlite:///{tmp_path}/s.db"}))
    assert post(exporter, envelope("first")).status_code == 200
    store = exporter.runtime.state.store
    with store._mutex:  # SQLite's own limit: writes fail with SQLITE_FULL, as on a full disk
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        for db in (store._db, store._fast, store._checkpoints):
            db.execute(f"PRAGMA max_page_count={pages}")
    caplog.clear()
    answers, up = [], []
    for n in range(40):
        answers.append(post(exporter, envelope(*(f"full-{n}-{i}" for i in range(50)),
                                               repository=f"r{n}")).status_code)
        up.append(exporter.scrape().value("cachewatch_state_up"))
    full = answers.index(503)  # the free room in the file's last pages is used up first
    assert full < 10
    assert answers[full:] == [503] * (40 - full)
    assert up[full:] == [0] * (40 - full)  # steady, not flipping with each request
    lines = [r for r in caplog.records if r.name == "cachewatch.state"]
    assert len(lines) <= 2, [r.getMessage() for r in lines]


# --- 7. caps say when they bite ------------------------------------------------------------------
def test_a_full_cap_is_exported_and_logged_once_a_minute(exporter_factory, caplog):
    exporter = exporter_factory(settings([], **{"redis.enabled": False,
                                                "registry.max_repositories": 2}))
    assert OVERFLOW not in exporter.scrape().families  # a cap that never bit adds nothing
    for n in range(5):
        assert post(exporter, envelope(f"e{n}", repository=f"team/r{n}")).status_code == 200
    metrics = exporter.scrape()
    assert metrics.value(OVERFLOW, family="registry.repositories") == 3
    assert metrics.label_values(PULLS, "repository") == {"team/r0", "team/r1", OTHER}
    folds = [r for r in caplog.records if "label cap full" in r.getMessage()]
    assert len(folds) == 1
    assert folds[0].cap == "registry.repositories"


def test_values_unseen_for_the_window_give_their_place_up():
    now = [0.0]
    cap = LabelCap(2, name="t", forget_after=100.0, clock=lambda: now[0])
    assert [cap("a"), cap("b"), cap("junk")] == ["a", "b", OTHER]
    now[0] = 60.0
    assert cap("b") == "b"  # b is seen again; a is not
    now[0] = 101.0
    assert cap("new") == "new"  # a gave its place up
    assert cap("other-new") == OTHER  # b was seen 41 s ago
    assert cap("a") == OTHER
    assert cap.overflowed == 3


def test_forgotten_records_have_a_count_limit():
    store = MemoryStore()

    def push(key: str) -> None:
        store.write([Batch("app", [], update=Update(key, lambda old: (1, {}, None),
                                                    keep_at_most=3))])

    for key in ("a", "b", "c", "a", "d"):
        push(key)
    assert list(store._records["app"]) == ["c", "a", "d"]  # b, least lately pushed, went


def test_sqlite_forgets_records_past_the_count_limit(tmp_path):
    from cachewatch.state.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "s.db")
    try:
        for key in ("a", "b", "c", "d"):
            store.write([Batch("app", [], update=Update(key, lambda old: (1, {}, None),
                                                        keep_at_most=2))])
        store.ping()
        kept = store._db.execute("SELECT key FROM records ORDER BY key").fetchall()
        assert [k for (k,) in kept] == ["c", "d"]
    finally:
        store.close()
