"""The exporter's HTTP server under abuse: idle and slow connections, oversized heads, garbage,
a connection flood; and refused requests that must not fill the log. All on loopback, bounded
in count and time."""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import time

import httpx
import pytest

from cachewatch import receiving
from cachewatch.http.refusals import RefusalLog
from cachewatch.http.serving import FD_RESERVE, connection_cap, raise_open_file_limit

from support import Metrics, settings

REFUSED = "cachewatch_http_refused_total"
IDLE = 1100


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _server_side_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("cachewatch", "uvicorn", "asyncio"))]


def test_1100_idle_connections_leave_metrics_answering_and_the_log_quiet(exporter_factory,
                                                                         caplog):
    """Before: 1,100 idle connections stopped /metrics and grew the log by 113 MB. Started
    with the common default of 1,024 open files, which the server raises to the hard limit."""
    caplog.set_level(logging.DEBUG)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 2 * IDLE + 2 * FD_RESERVE, \
        "the hard open-file limit is too low for this test (client and server in one process)"
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        exporter = exporter_factory(settings([]))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, resource.getrlimit(
            resource.RLIMIT_NOFILE)[0]), hard))
    exporter.scrape()
    before = len(_server_side_lines(caplog))
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE):
            idle.append(_connect(exporter.port))
        started = time.monotonic()
        response = httpx.get(exporter.url + "/metrics", timeout=3)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 3.0
        metrics = Metrics(response.text)
    finally:
        for sock in idle:
            sock.close()
    # 1,024 connections at most: the ones idle longest made room for the newer ones.
    shed = metrics.value(REFUSED, reason="connection_cap")
    assert shed >= IDLE + 1 - 1024
    added = _server_side_lines(caplog)[before:]
    assert len(added) <= 3, [r.getMessage() for r in added]  # one line per cause, not per socket


@pytest.mark.e2e  # waits on real timeouts: in `make test`, out of the fast loop
def test_a_connection_that_sends_nothing_is_closed_quietly(exporter_factory, caplog):
    caplog.set_level(logging.DEBUG)
    exporter = exporter_factory(settings([], **{"web.header_timeout": 0.3}))
    before = len(_server_side_lines(caplog))
    with _connect(exporter.port) as sock:
        assert _closed_by_server(sock, within=3)
    assert _server_side_lines(caplog)[before:] == []


@pytest.mark.e2e  # waits on real timeouts: in `make test`, out of the fast loop
def test_slow_headers_are_cut_off(exporter_factory):
    """Slowloris: a byte of the head every 100 ms keeps no connection past the timeout."""
    exporter = exporter_factory(settings([], **{"web.header_timeout": 0.5}))
    with _connect(exporter.port) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        assert _closed_by_server(sock, within=3)
        assert time.monotonic() - started < 2.5
    metrics = exporter.scrape()
    assert metrics.value(REFUSED, reason="header_timeout") == 1


@pytest.mark.e2e  # waits on real timeouts: in `make test`, out of the fast loop
def test_a_slow_body_is_cut_off(exporter_factory):
    exporter = exporter_factory(settings([], **{"web.body_timeout": 0.5}))
    with _connect(exporter.port) as sock:
        sock.sendall(b"POST /api/v1/caches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000\r\n\r\n{\"instance\"")
        started = time.monotonic()
        assert _closed_by_server(sock, within=3)
        assert time.monotonic() - started < 2.0
    assert exporter.scrape().value(REFUSED, reason="body_timeout") == 1


def test_a_huge_request_head_gets_431(exporter_factory):
    exporter = exporter_factory(settings([], **{"web.max_header_bytes": 8192}))
    with _connect(exporter.port) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            for _ in range(64):
                sock.sendall(b"X-Filler: " + b"f" * 1000 + b"\r\n")
        sock.settimeout(3)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    assert exporter.scrape().value(REFUSED, reason="header_too_large") == 1
    # a normal request with a large body is not a large head
    response = httpx.post(exporter.url + "/api/v1/caches", content=b" " * 100_000,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_garbage_requests_are_answered_400_and_logged_once(exporter_factory, caplog):
    caplog.set_level(logging.DEBUG)
    exporter = exporter_factory(settings([]))
    before = len(_server_side_lines(caplog))
    for _ in range(50):
        with _connect(exporter.port) as sock:
            sock.sendall(b"\x16\x03\x01 NOT HTTP\r\n\r\n")
            sock.settimeout(3)
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
    added = _server_side_lines(caplog)[before:]
    assert len(added) == 1, [r.getMessage() for r in added]
    assert added[0].cause == "bad_request"
    assert exporter.scrape().value(REFUSED, reason="bad_request") == 50


@pytest.mark.e2e  # waits on real timeouts: in `make test`, out of the fast loop
def test_keep_alive_connections_are_reused_then_closed_when_idle(exporter_factory):
    exporter = exporter_factory(settings([], **{"web.keepalive_timeout": 0.3}))
    with _connect(exporter.port) as sock:
        sock.settimeout(3)
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\nok\n"):
                answer += sock.recv(1000)
            assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _closed_by_server(sock, within=3)
        assert time.monotonic() - started < 2


def test_the_bearer_scheme_is_case_insensitive(exporter_factory):
    """RFC 7235: the scheme is case-insensitive; the token is not."""
    exporter = exporter_factory(settings([], **{"builds.token": "tok-1",
                                                "registry.token": "tok-1"}))
    with httpx.Client(base_url=exporter.url) as http:
        for path in ("/api/v1/builds", "/webhooks/registry"):  # the framework and the raw path
            for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
                good = http.post(path, json={"events": []},
                                 headers={"Authorization": f"{scheme} tok-1"})
                assert good.status_code != 401, (path, scheme)
            for wrong in ("Bearer tok-2", "Bearer TOK-1", "tok-1", "Basic tok-1", "Bearertok-1",
                          ""):
                response = http.post(path, json={"events": []},
                                     headers={"Authorization": wrong})
                assert response.status_code == 401, (path, wrong)


def test_refused_receiver_requests_are_logged_once_per_cause(exporter_factory, caplog,
                                                            monkeypatch):
    caplog.set_level(logging.DEBUG)
    # The receivers' log memory is process-wide: start from none, whatever ran before.
    monkeypatch.setattr(receiving, "RECEIVER_REFUSALS", RefusalLog())
    exporter = exporter_factory(settings([], **{"app.token": "tok-1",
                                                "app.max_body_bytes": 1024}))
    before = len(_server_side_lines(caplog))
    with httpx.Client(base_url=exporter.url) as http:
        for _ in range(30):
            assert http.post("/api/v1/caches", json={},
                             headers={"Authorization": "Bearer nope"}).status_code == 401
            assert http.post("/api/v1/caches", content=b"x" * 2048,
                             headers={"Authorization": "Bearer tok-1"}).status_code == 413
    added = [r for r in _server_side_lines(caplog)[before:] if r.name == "cachewatch.refused"]
    assert sorted(r.cause for r in added) == ["app:auth", "app:too_large"]
    metrics = exporter.scrape()
    assert metrics.value("cachewatch_app_push_rejected_total", reason="auth") == 30
    assert metrics.value("cachewatch_app_push_rejected_total", reason="too_large") == 30


def test_the_refusal_log_says_how_many_it_left_out():
    now = [0.0]
    log = RefusalLog(interval=60, clock=lambda: now[0])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("cachewatch.refused")
    logger.addHandler(handler)
    try:
        for second in range(0, 150):
            now[0] = float(second)
            log.refused("unauthorized", "refused")
    finally:
        logger.removeHandler(handler)
    assert [r.suppressed for r in records] == [0, 59, 59]  # at 0 s, 60 s and 120 s
    assert log.counts() == {"unauthorized": 150}


def test_the_open_file_limit_is_raised_and_the_cap_fits_it():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        raised = raise_open_file_limit()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised == (hard if hard != resource.RLIM_INFINITY else raised)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, raised), hard))
    assert connection_cap(1024, 1024) == 1024 - FD_RESERVE
    assert connection_cap(1024, 100_000) == 1024


def test_limits_are_settings_with_env_vars(monkeypatch):
    from cachewatch.config import load_settings

    monkeypatch.setenv("CACHEWATCH_WEB__HEADER_TIMEOUT", "2s")
    monkeypatch.setenv("CACHEWATCH_WEB__MAX_CONNECTIONS", "64")
    web = load_settings().web
    assert (web.header_timeout, web.max_connections) == (2.0, 64)
