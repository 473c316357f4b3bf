"""Floods and fail-open corners (issue 27): no receiver starves a scrape, writes are closed by
default, auth never fails open, logs and answers stay bounded, the next request starts clean.

Every test runs against the real server on loopback (or the real ASGI application where a
client address other than loopback is needed) with a load bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import logging
import socket
import sys
import threading
import time
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from cachewatch import receiving
from cachewatch.cli import _say_closed_receivers
from cachewatch.http import serving
from cachewatch.http.guard import LiveWebConfig
from cachewatch.http.refusals import RefusalLog
from cachewatch.http.webconfig import load
from cachewatch.sources.registry import events

from support import Metrics, settings, wait_until

REFUSED = "cachewatch_http_refused_total"
REJECTED = "cachewatch_registry_webhook_rejected_total"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
RECEIVERS = ("/api/v1/builds?image=a", "/api/v1/caches", "/api/v1/ci/caches", "/webhooks/registry")


def receivers(**overrides: object):
    return settings([], **{"redis.enabled": False, **overrides})


def event(n: int, repository: str = "team/app") -> dict:
    return {"id": f"e{n}", "action": "pull",
            "target": {"repository": repository, "mediaType": MANIFEST}}


def post(url: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), timeout=30,
                      headers={"content-type": "application/json"}, **kwargs)


# --- 1. the flood -----------------------------------------------------------------------------
def _benchmark():
    path = Path(__file__).parents[2] / "benchmarks" / "receiver_flood.py"
    spec = importlib.util.spec_from_file_location("receiver_flood", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_under_the_flood_every_scrape_answers_within_1s_and_rss_stays_under_300mb():
    bench = _benchmark()
    figures = bench.flood(rounds=1)  # 8 x 40 MiB build logs + 8 x 8 MB envelopes, at once
    print(f"scrape max {figures.worst_scrape * 1000:.0f} ms, peak RSS {figures.peak_mb:.0f} MB,"
          f" after {figures.settled_mb:.0f} MB (baseline {figures.baseline_mb:.0f} MB)")
    assert figures.scrapes
    assert not figures.failed_scrapes
    assert figures.worst_scrape < 0.8 * bench.SCRAPE_GOAL_S  # the goal, with margin
    assert figures.peak_mb < 0.8 * bench.RSS_GOAL_MB
    assert figures.settled_mb < figures.baseline_mb + 40  # back near the baseline
    # Every oversized envelope is refused (413), every body the budget cannot hold gets 503.
    assert figures.answers["/webhooks/registry 413"] == 8
    assert figures.answers["/api/v1/builds?image=flood 503"] >= 4


def test_bodies_over_the_shared_budget_get_503_and_the_budget_is_given_back(exporter_factory):
    exporter = exporter_factory(receivers(**{"web.max_inflight_body_bytes": 1 << 20}))
    url = exporter.url + "/api/v1/builds?image=app"
    big = httpx.post(url, content=b"x" * (2 << 20), headers={"content-type": "text/plain"},
                     timeout=30)
    assert big.status_code == 503, big.text
    assert big.headers["retry-after"] == "1"
    assert "web.max_inflight_body_bytes" in big.json()["error"]
    # A chunked body is refused as soon as it outgrows the budget.
    chunks = httpx.post(url, content=iter([b"y" * 65536] * 40), timeout=30,
                        headers={"content-type": "text/plain"})
    assert chunks.status_code == 503
    for _ in range(3):  # what the refused and the served requests held was given back
        small = httpx.post(url, content=b"#1 [1/1] RUN true\n#1 DONE 0.1s\n", timeout=30,
                           headers={"content-type": "text/plain"})
        assert small.status_code == 202, small.text
    # A request's share is given back when its handler returns, which on a loaded machine can
    # be a moment after the client read the answer; a share never given back fails here.
    wait_until(lambda: exporter.runtime.bodies.held == 0, timeout=10)
    assert exporter.scrape().value(REFUSED, reason="body_budget") == 2


def test_an_envelope_over_max_events_gets_413_and_counts_nothing(exporter_factory):
    exporter = exporter_factory(receivers(**{"registry.max_events": 10}))
    over = post(exporter.url + "/webhooks/registry", {"events": [event(n) for n in range(11)]})
    assert over.status_code == 413
    assert "registry.max_events" in over.json()["error"]
    at = post(exporter.url + "/webhooks/registry", {"events": [event(n) for n in range(10)]})
    assert at.json() == {"accepted": 10, "duplicates": 0, "rejected": []}
    metrics = exporter.scrape()
    assert metrics.value(REJECTED, source="distribution", reason="too_large") == 1
    assert metrics.value("cachewatch_registry_image_pulls_total", registry="unknown",
                         repository="team/app", tag="") == 10


@pytest.mark.parametrize("whole_bytes", [64 * 1024, 0], ids=["whole", "one_at_a_time"])
def test_the_envelope_reader_takes_what_json_takes_and_refuses_what_it_refuses(
        whole_bytes, monkeypatch):
    from cachewatch.sources.registry import envelope as module
    from cachewatch.sources.registry.envelope import TooManyEvents, read_envelope

    monkeypatch.setattr(module, "WHOLE_BYTES", whole_bytes)  # both readers, the same answers

    def read(raw: bytes, cap: int = 100):
        return asyncio.run(read_envelope(raw, cap))

    envelope = {"before": {"a": [1, 2]}, "events": [event(1), {"x": "\ud800"}], "after": None}
    raw = json.dumps(envelope).encode()
    assert read(raw) == json.loads(raw)
    # What orjson refuses and json.loads takes is still taken (orjson hands it over).
    for odd in (b'{"events": [{"size": NaN}]}', b'{"events": [{"size": 123456789012345678901}]}'):
        assert repr(read(odd)) == repr(json.loads(odd))
    assert read(b' \n{ "events" : [ ] } \n') == {"events": []}
    assert read(b"[1]") == [1]
    for bad in (b'{"events": [1,]}', b'{"events": [1] "x": 2}', b'{"events": [1]} x', b"{",
                b'{1: 2}'):
        with pytest.raises(ValueError):  # noqa: PT011 - each parser words it its own way
            json.loads(bad)
        with pytest.raises(ValueError):  # noqa: PT011
            read(bad)
    with pytest.raises(TooManyEvents):
        read(json.dumps({"events": [event(n) for n in range(4)]}).encode(), cap=3)


# --- 2. writes closed by default -------------------------------------------------------------
def _from(address: str, app, path: str, **kwargs: object) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://cachewatch") as c:
            return await c.post(path, content=b"{}", **kwargs)
    return asyncio.run(call())


@pytest.mark.parametrize("path", RECEIVERS)
def test_without_a_token_only_loopback_may_write(exporter_factory, path):
    exporter = exporter_factory(receivers())
    refused = _from("10.1.2.3", exporter.app, path)
    assert refused.status_code == 403
    assert ".token" in refused.json()["error"]
    assert "basic_auth_users" in refused.json()["error"]
    assert _from("::ffff:127.0.0.1", exporter.app, path).status_code != 403
    assert httpx.post(exporter.url + path, content=b"{}", timeout=10).status_code != 403
    assert exporter.scrape().value(REFUSED, reason="write_forbidden") == 1


def test_a_token_opens_writes_from_other_hosts(exporter_factory):
    exporter = exporter_factory(receivers(**{"registry.token": "s3cret"}))
    assert _from("10.1.2.3", exporter.app, "/webhooks/registry").status_code == 401
    answer = _from("10.1.2.3", exporter.app, "/webhooks/registry",
                   headers={"authorization": "Bearer s3cret"})
    assert answer.status_code == 400  # authorised; "{}" is no envelope


def test_start_up_says_which_receivers_are_closed_and_how_to_open_them(caplog):
    caplog.set_level(logging.WARNING, "cachewatch")
    _say_closed_receivers(receivers(**{"registry.token": "t"}), basic_auth=False)
    (line,) = [r for r in caplog.records if "loopback only" in r.getMessage()]
    assert line.receivers == "builds,app,ci"
    assert "CACHEWATCH_BUILDS__TOKEN" in line.fix
    assert "basic_auth_users" in line.fix
    caplog.clear()
    _say_closed_receivers(receivers(), basic_auth=True)
    assert not caplog.records


@pytest.mark.parametrize("path", [*RECEIVERS, "/webhooks/harbor", "/metrics"])
def test_two_authorization_headers_get_400_on_every_path(exporter_factory, path):
    exporter = exporter_factory(receivers(**{"registry.token": "a", "builds.token": "a"}))
    answer = httpx.post(exporter.url + path, content=b"{}", timeout=10, headers=[
        ("authorization", "Bearer a"), ("authorization", "Bearer b")])
    assert answer.status_code == 400
    assert b"more than one Authorization header" in answer.content


def test_the_deployments_give_every_receiver_a_token():
    root = Path(__file__).parents[2] / "deploy"
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    env = compose["services"]["cachewatch"]["environment"]
    kube = next(d for d in yaml.safe_load_all((root / "kubernetes/receiver.yaml").read_text())
                if d["kind"] == "Deployment")
    secret_env = {e["name"] for c in kube["spec"]["template"]["spec"]["containers"]
                  for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    for name in ("REGISTRY", "BUILDS", "APP"):
        assert f"CACHEWATCH_{name}__TOKEN" in env
        assert f"CACHEWATCH_{name}__TOKEN" in secret_env


# --- 3. auth never fails open ---------------------------------------------------------------
def _web_config(folder: Path, password: str = "right-Password-1") -> Path:
    path = folder / "web.yml"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    path.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    return path


def test_a_web_config_emptied_while_running_keeps_the_last_one(tmp_path, caplog):
    path = _web_config(tmp_path)
    live = LiveWebConfig(load(path))
    path.write_text("")
    assert serving.reload(live, None) is False
    assert set(live.current.users) == {"prometheus"}
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "is empty" in error.error
    assert load(path).users == {}  # at start-up an empty file is the toolkit's "no settings"


def _basic(password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(
        f"prometheus:{password}".encode()).decode()}


def test_a_flood_of_wrong_passwords_from_one_address_cannot_lock_the_right_one_out(
        exporter_factory, tmp_path):
    # Cost 12: each comparison takes long enough (~0.2 s) for the flood to queue them.
    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"right-Password-1", bcrypt.gensalt(12)).decode()
    path.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    exporter = exporter_factory(receivers(**{"web.config_file": path}))
    stop = threading.Event()
    flooded: list[httpx.Response] = []

    def flood(n: int) -> None:  # from 127.0.0.2: loopback, but another client address
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=30) as client:
            attempt = 0
            while not stop.is_set() and attempt < 40:
                attempt += 1
                flooded.append(client.get(exporter.url + "/metrics",
                                          headers=_basic(f"wrong-{n}-{attempt}")))

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: any(r.status_code == 429 for r in flooded), timeout=20)
        began = time.monotonic()
        right = exporter.get("/metrics", headers=_basic("right-Password-1"))
        took = time.monotonic() - began
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert right.status_code == 200
    # A few comparisons long, not the flood's length (16 x 40 of them): in units of one
    # comparison on this machine now, so a loaded machine slows both sides alike.
    began = time.monotonic()
    bcrypt.checkpw(b"wrong", hashed.encode())
    one = time.monotonic() - began
    assert took < max(3.0, 15 * one), (took, one)
    busy = next(r for r in flooded if r.status_code == 429)
    assert b"password checks from your address" in busy.content
    assert {r.status_code for r in flooded} <= {401, 429}


# --- 4. bounded logs and answers --------------------------------------------------------------
def test_a_7mib_field_gives_neither_a_7mib_log_line_nor_a_7mib_answer(exporter_factory, caplog,
                                                                     monkeypatch):
    caplog.set_level(logging.INFO)
    # The receivers' log memory is process-wide: start from none, whatever ran before (a test
    # that refused a registry event within the minute would hold this one's line back).
    fresh = RefusalLog()
    monkeypatch.setattr(receiving, "RECEIVER_REFUSALS", fresh)
    monkeypatch.setattr(events, "RECEIVER_REFUSALS", fresh)
    exporter = exporter_factory(receivers())
    huge = "x" * (7 << 20)
    for _ in range(3):
        answer = post(exporter.url + "/webhooks/registry",
                      {"events": [{"id": "a", "action": huge, "target": {"repository": "r"}}]})
        assert answer.status_code == 400
        assert len(answer.content) < 4096
    harbor = post(exporter.url + "/webhooks/harbor", {"type": "PULL_ARTIFACT", "event_data": {
        "repository": {"repo_full_name": huge}}})
    assert harbor.status_code == 400
    assert len(harbor.content) < 4096
    from cachewatch.logs import JsonFormatter, LogfmtFormatter

    lines = [f.format(r) for r in caplog.records for f in (JsonFormatter(), LogfmtFormatter())]
    assert lines
    assert max(len(line) for line in lines) < 8192
    refused = [r for r in caplog.records if r.getMessage() == "registry events refused"]
    assert len(refused) == 1  # one line per cause and minute, not per request


# --- 9. after a 413 the next request starts clean -----------------------------------------------
def _raw_exchange(port: int, head: bytes, rest: bytes, then: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(65536)
        sock.sendall(rest + then)
        sock.settimeout(5)
        data = b""
        try:
            while b"ok\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
    return answer + b"||" + data


def test_after_a_413_the_unread_body_is_drained_not_read_as_headers(exporter_factory):
    exporter = exporter_factory(receivers(**{"registry.max_body_bytes": 1024}))
    body = b"z" * 200_000  # under the drain limit: drained, the connection stays usable
    head = (b"POST /webhooks/registry HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            b"\r\ncontent-length: %d\r\n\r\n" % len(body))
    data = _raw_exchange(exporter.port, head + body[:1000], body[1000:],
                         b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    first, _, then = data.partition(b"||")
    assert first.startswith(b"HTTP/1.1 413")
    assert b"HTTP/1.1 200" in then
    assert then.endswith(b"ok\n")
    metrics = exporter.scrape()
    assert metrics.value(REFUSED, reason="header_too_large") == 0
    assert metrics.value(REFUSED, reason="bad_request") == 0


def test_a_refused_body_over_the_drain_limit_closes_the_connection(exporter_factory):
    exporter = exporter_factory(receivers(**{"registry.max_body_bytes": 1024}))
    body = b"z" * (serving.DRAIN_LIMIT + 300_000)
    head = (b"POST /webhooks/registry HTTP/1.1\r\nhost: x\r\n"
            b"content-length: %d\r\n\r\n" % len(body))
    try:
        data = _raw_exchange(exporter.port, head, body,
                             b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    except (ConnectionResetError, BrokenPipeError):
        data = b"HTTP/1.1 413||"
    first, _, then = data.partition(b"||")
    assert first.startswith(b"HTTP/1.1 413")
    assert b"HTTP/1.1 200" not in then  # closed, never read as a next request
    assert Metrics(exporter.get("/metrics").text).value(REFUSED, reason="header_too_large") == 0
