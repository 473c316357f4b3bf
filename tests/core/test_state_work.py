"""The work one webhook envelope costs its state store, counted rather than timed.

A receiver's throughput is bounded by its round trips to the store: an envelope of N events
must cost the store one commit of a few statements (SQLite) or one script call (Redis), never
work per event. Counted on the real stores: SQLite's own statement trace, Redis's own
``INFO commandstats``. Timing is the benchmark's job (benchmarks/webhook_throughput.py).
"""

from __future__ import annotations

import re

import httpx
import pytest

from support import Exporter
from support import settings as exporter_settings

EVENTS = 50
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def envelope(tag: str) -> dict:
    """``EVENTS`` blob pulls with unique ids over ten repositories, one id sent twice."""
    events = [{"id": f"{tag}-{n}", "action": "pull",
               "target": {"mediaType": LAYER, "size": 100, "repository": f"team/app{n % 10}"},
               "request": {"method": "GET", "host": "r:5000"}} for n in range(EVENTS - 1)]
    return {"events": [*events, events[0]]}


def post(exporter: Exporter, tag: str) -> dict:
    answer = httpx.post(exporter.url + "/webhooks/registry", json=envelope(tag), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def start(exporter_factory, url: str) -> Exporter:
    return exporter_factory(exporter_settings([], **{"redis.enabled": False, "state.url": url}))


def test_an_envelope_is_one_sqlite_transaction_of_five_statements(exporter_factory, tmp_path):
    """BEGIN, the ids looked up in both generations, the ids stored, the counters added,
    COMMIT: five statements for 50 events (two per event and one per counter was 123)."""
    exporter = start(exporter_factory, f"sqlite:///{tmp_path}/state.db")
    store = exporter.runtime.state.store
    statements: list[str] = []
    for connection in (store._fast, store._db):  # the loop's and the writer thread's
        connection.set_trace_callback(statements.append)
    assert post(exporter, "warm") == {"accepted": EVENTS - 1, "duplicates": 1, "rejected": []}
    statements.clear()
    assert post(exporter, "counted") == {"accepted": EVENTS - 1, "duplicates": 1,
                                         "rejected": []}
    # Leave out what the writer's idle check may run meanwhile (a probe, a checkpoint).
    work = [s for s in statements if re.search(r"BEGIN|COMMIT|seen_|counters", s)]
    assert len(work) == 5, work
    assert [s.split()[0] for s in work] == ["BEGIN", "SELECT", "INSERT", "INSERT", "COMMIT"]
    assert exporter.scrape().value("cachewatch_registry_blob_pulls_total", registry="r:5000",
                                   repository="team/app3") == 2 * 5


def test_an_envelope_is_one_redis_script_call(exporter_factory, redis_factory):
    """One EVALSHA per envelope, whatever its number of events; the script claims each id
    inside Redis (one ZADD each)."""
    redis = redis_factory()
    exporter = start(exporter_factory, redis.url)
    client = redis.client()

    def calls() -> dict[str, int]:
        stats = client.info("commandstats")
        return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}

    post(exporter, "warm")
    before = calls()
    assert post(exporter, "counted") == {"accepted": EVENTS - 1, "duplicates": 1,
                                         "rejected": []}
    after = calls()
    grown = {name: after[name] - before.get(name, 0) for name in after
             if after[name] != before.get(name, 0)}
    grown.pop("info", None)  # ours
    grown.pop("ping", None)  # the writer's idle check
    assert grown.pop("evalsha") == 1
    assert grown.pop("zadd") == EVENTS
    assert set(grown) <= {"time", "hincrbyfloat", "expire", "zcard", "zremrangebyrank"}, grown
    # The events and duplicates counters, pulls and bytes of ten repositories: once each.
    assert grown["hincrbyfloat"] == 2 + 2 * 10


@pytest.mark.parametrize("events", [1, EVENTS])
def test_an_envelope_is_one_memory_store_write(exporter_factory, monkeypatch, events):
    exporter = start(exporter_factory, "memory://")
    store = exporter.runtime.state.store
    writes: list[int] = []
    write = store.write

    def counted(batches):
        writes.append(len(batches))
        return write(batches)

    monkeypatch.setattr(store, "write", counted)
    body = envelope(f"memory{events}")
    body["events"] = body["events"][:events]
    answer = httpx.post(exporter.url + "/webhooks/registry", json=body, timeout=10)
    assert answer.json()["accepted"] + answer.json()["duplicates"] == events
    assert writes == [1]


@pytest.mark.parametrize(("wait", "moves_off"), [("sleep", True), ("spin", False)])
def test_only_a_commit_that_waited_moves_commits_off_the_loop(tmp_path, monkeypatch, wait,
                                                               moves_off):
    """A commit on the loop that blocked (a stalling disk; here a sleep) moves commits to the
    writer thread; one that was slow only because it computed or was preempted (a busy
    machine; here a spin) does not: the thread hand-off would cost every request."""
    import asyncio
    import time

    from cachewatch.state.base import Batch, Change
    from cachewatch.state.sqlite import SLOW_ON_LOOP, SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    commit = store._commit

    def slow(db, batches):
        until = time.monotonic() + 2 * SLOW_ON_LOOP
        if wait == "sleep":
            time.sleep(2 * SLOW_ON_LOOP)
        while time.monotonic() < until:
            pass
        return commit(db, batches)

    monkeypatch.setattr(store, "_commit", slow)
    try:
        batch = Batch("registry", [Change({("x",): 1.0}, b"id")])
        assert asyncio.run(store.write_now(batch)).applied == [True]
        assert (time.monotonic() < store._off_loop_until) is moves_off
    finally:
        store.close()


EVENTS_KEY = ("cachewatch_registry_events_total", "distribution", "pull")


async def at_once(state, ids: list[str]) -> list[list[bool]]:
    """One request per id, all reaching the store in one turn of the loop (as from 16
    senders); which of their events were new. A repeated id counts ``("dup",)``."""
    import asyncio

    from cachewatch.state import Batch, Change

    def batch(event_id: str) -> Batch:
        return Batch("registry", [Change({EVENTS_KEY: 1.0}, event_id.encode(), {("dup",): 1.0})])

    outcomes = await asyncio.gather(*(state.submit(batch(i)) for i in ids))
    return [outcome.applied for outcome in outcomes]


def test_requests_of_one_loop_turn_share_one_sqlite_commit(tmp_path):
    """Group commit on the loop: sixteen requests that reach the store in the same turn are
    one transaction of five statements (their claims merged), each told its own outcome (a
    duplicate inside the group included); a request alone is one transaction too."""
    import asyncio

    from cachewatch.state import State
    from cachewatch.state.sqlite import SqliteStore

    state = State(SqliteStore(tmp_path / "state.db"), "r")
    ledger = state.ledger("registry")
    statements: list[str] = []
    state.store._fast.set_trace_callback(statements.append)
    try:
        assert asyncio.run(at_once(state, ["alone"])) == [[True]]
        assert statements.count("COMMIT") == 1
        statements.clear()
        ids = [f"e{n}" for n in range(15)] + ["e3"]
        assert asyncio.run(at_once(state, ids)) == [[True]] * 15 + [[False]]
        # One transaction of five statements, as for one envelope of sixteen events.
        assert [s.split()[0] for s in statements] == ["BEGIN", "SELECT", "INSERT", "INSERT",
                                                      "COMMIT"], statements
        assert dict(ledger.items()) == {EVENTS_KEY: 16.0, ("dup",): 1.0}
        assert state.store.load("registry") == {EVENTS_KEY: 16.0, ("dup",): 1.0}
    finally:
        state.close()


def test_requests_of_one_loop_turn_share_one_redis_script_call(redis_factory):
    """The same on Redis: sixteen requests in one turn of the loop are one EVALSHA (their
    ids claimed inside it, a duplicate inside the group seen as one), each told its own
    outcome."""
    import asyncio

    from cachewatch.state import State
    from cachewatch.state.redis import RedisStore

    redis = redis_factory()
    client = redis.client()
    state = State(RedisStore(redis.url, "r"), "r")
    ledger = state.ledger("registry")

    def calls() -> dict[str, int]:
        stats = client.info("commandstats")
        return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}

    async def scenario() -> tuple[list[list[bool]], dict[str, int], dict]:
        try:
            assert await at_once(state, ["warm"]) == [[True]]  # loads the script, connects
            before = calls()
            outcomes = await at_once(state, [f"e{n}" for n in range(15)] + ["e3"])
            after = calls()
            return (outcomes, {name: after[name] - before.get(name, 0) for name in after},
                    state.store.load("registry"))
        finally:
            state.close()  # on the loop its connection lives on

    outcomes, grown, stored = asyncio.run(scenario())
    assert outcomes == [[True]] * 15 + [[False]]
    assert grown["evalsha"] == 1
    assert grown["zadd"] == 16
    assert dict(ledger.items()) == stored == {EVENTS_KEY: 16.0, ("dup",): 1.0}


def _alone_batch(n: int):
    from cachewatch.state import Batch, Change

    return Batch("registry", [Change({EVENTS_KEY: 1.0}, f"alone-{n}".encode(), {("dup",): 1.0})])


def test_a_request_alone_commits_to_sqlite_without_a_turn_of_the_loop(tmp_path):
    """With nothing else ready on the loop (one sender) nobody can join a group commit, so a
    request's commit must not wait a turn for them: ``submit`` runs to its end without
    suspending once (no selector poll, no task wake-up), and its event is stored."""
    import asyncio

    from cachewatch.state import State
    from cachewatch.state.sqlite import SqliteStore

    state = State(SqliteStore(tmp_path / "state.db"), "r")
    state.ledger("registry")

    async def without_suspending(n: int) -> list[bool]:
        submit = state.submit(_alone_batch(n))
        try:
            submit.send(None)
        except StopIteration as done:
            return done.value.applied
        submit.close()
        raise AssertionError("the commit waited for a turn of the loop")

    async def scenario() -> list[list[bool]]:
        return [await without_suspending(n) for n in (1, 2, 1)]

    try:
        assert asyncio.run(scenario()) == [[True], [True], [False]]
        assert state.store.load("registry") == {EVENTS_KEY: 2.0, ("dup",): 1.0}
    finally:
        state.close()


def test_a_request_alone_costs_redis_one_round_trip_and_no_timer(redis_factory):
    """One sender on Redis: per envelope one poll of the selector for the reply and one for
    the task's wake-up (not a third turn waiting for others to join), and no timer per
    command (one watchdog per connection), so the loop's timer heap does not grow."""
    import asyncio
    import selectors

    from cachewatch.state import State
    from cachewatch.state.redis import RedisStore

    redis = redis_factory()
    state = State(RedisStore(redis.url, "r"), "r")
    state.ledger("registry")
    polls = 0

    class Counting(selectors.DefaultSelector):
        def select(self, timeout=None):
            nonlocal polls
            polls += 1
            return super().select(timeout)

    async def scenario() -> tuple[int, int, list[list[bool]]]:
        nonlocal polls
        await state.submit(_alone_batch(0))  # connects, loads the script
        loop = asyncio.get_running_loop()
        polls, timers = 0, len(loop._scheduled)
        applied = [(await state.submit(_alone_batch(n))).applied for n in (1, 2, 1) * 10]
        return polls, len(loop._scheduled) - timers, applied

    loop = asyncio.SelectorEventLoop(Counting())
    try:
        turns, timers, applied = loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(asyncio.sleep(0))
        state.close()
        loop.close()
    assert applied == [[True], [True], [False]] + [[False]] * 27
    assert turns <= 2 * 30 + 2, turns  # 3 per envelope before (a turn to gather a group)
    assert timers <= 1, timers
