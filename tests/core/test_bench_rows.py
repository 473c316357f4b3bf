"""``make bench``'s table: every ``row:`` line the benchmarks print is collected, whatever its
unit (a ratio, megabytes), so no figure silently drops out of the table."""

from __future__ import annotations

import importlib.util

from support import ROOT


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_of_every_unit_are_collected_with_their_goal_and_peers():
    row = _run_all().ROW
    found = row.match("row: RSS after 200 scrapes - floor = 7.3 MB (goal <= 3 MB) "
                      "[55.3 MB vs 48.0 MB]")
    assert found
    assert found.groupdict() == {"figure": "RSS after 200 scrapes - floor", "value": "7.3 MB",
                                 "goal": "<= 3 MB", "detail": "55.3 MB vs 48.0 MB"}
    ratio = row.match("row: registry webhook events/s / bare ASGI, 16 senders = 0.36x "
                      "(goal >= 0.8x) [memory state 5531 events/s, bare uvicorn 12732/s]")
    assert ratio
    assert (ratio["figure"], ratio["value"], ratio["goal"]) == (
        "registry webhook events/s / bare ASGI, 16 senders", "0.36x", ">= 0.8x")
    assert row.match("row: parser / wc -l = 0.02x (goal >= 0.1x)")["detail"] is None
    assert row.match("scrape CPU / redis_exporter = 0.56x (goal <= 0.5x)") is None
