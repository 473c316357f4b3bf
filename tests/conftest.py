"""Fixtures: real services and exporters, started per test and always stopped.

A test that uses a real service (one of ``E2E_FIXTURES``) is marked ``e2e`` here, so
``pytest -m "not e2e"`` is the fast inner loop; tests that start subprocesses of their own say
so with ``@pytest.mark.e2e`` (or a module ``pytestmark``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cachewatch.collectors.health import Health
from cachewatch.config import CoreSettings as Settings

from support import (
    BuildkitDaemon,
    DockerEngine,
    Exporter,
    MemcachedServer,
    Prometheus,
    RedisServer,
    RegistryServer,
)

ACL_PASSWORD = "s3cret-acl-Pw"
# Fixtures that start a real service or a subprocess: a test using one is end-to-end.
E2E_FIXTURES = frozenset({"redis_factory", "redis_plain", "redis_auth", "docker_engine",
                          "prometheus_factory", "registry_factory", "serve",
                          "memcached_factory", "buildkitd"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a real service ``e2e``."""
    for item in items:
        if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
ADMIN_PASSWORD = "s3cret-admin-Pw"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own CACHEWATCH_* variables must not change what the tests see."""
    for name in list(os.environ):
        if name.startswith("CACHEWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start as many real redis-servers as a test needs; all are killed at the end."""
    started: list[RedisServer] = []

    def start(*args: str, tls: bool = False) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(started)}", *args, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_plain(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_factory()


@pytest.fixture
def memcached_factory() -> Iterator[Callable[..., MemcachedServer]]:
    """Start as many real memcached servers as a test needs; all are killed at the end."""
    started: list[MemcachedServer] = []

    def start(*args: str) -> MemcachedServer:
        server = MemcachedServer(*args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def memcached(memcached_factory: Callable[..., MemcachedServer]) -> MemcachedServer:
    return memcached_factory()


@pytest.fixture
def redis_auth(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """requirepass for the default user, plus ACL users: the least privilege the docs ask
    for (``+info +ping``), and one without ``+info``."""
    return redis_factory(
        "--requirepass", ADMIN_PASSWORD,
        "--user", "app", "on", f">{ACL_PASSWORD}", "+info", "+ping",
        "--user", "nosy", "on", f">{ACL_PASSWORD}", "~*", "+get", "+ping",
    )


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with trustme."""
    import trustme  # a test dependency: its absence is a broken set-up, not a skip
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem",
             "key": tmp_path / "server.key", "other_ca": tmp_path / "other-ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    trustme.CA().cert_pem.write_to_path(str(files["other_ca"]))
    return files


@pytest.fixture
def exporter_factory() -> Iterator[Callable[..., Exporter]]:
    """Run real exporters (uvicorn on loopback) for the given settings; stopped at the end."""
    running: list[Exporter] = []

    def start(settings: Settings, health: Health | None = None,
              port: int | None = None) -> Exporter:
        exporter = Exporter(settings, health, port).start()
        running.append(exporter)
        return exporter

    yield start
    for exporter in running:
        exporter.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """One real Docker engine for the session (starting one takes seconds)."""
    engine = DockerEngine().start()
    yield engine
    engine.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Real Prometheus servers scraping what a test names; stopped at the end."""
    started: list[Prometheus] = []

    def start(targets: list[str], rule_files: list[Path] = (), alertmanager: str | None = None,
              labels: list[dict[str, str]] | None = None,
              scrape: dict | None = None) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus{len(started)}", targets, rule_files,
                            alertmanager, labels, scrape).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    """Real Distribution registries for a test; stopped at the end."""
    started: list[RegistryServer] = []

    def start(**kwargs: object) -> RegistryServer:
        server = RegistryServer(tmp_path / f"registry{len(started)}", **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def buildkitd() -> Iterator[BuildkitDaemon]:
    """A real BuildKit daemon (v0.11.6, the build history API) of this test's own."""
    daemon = BuildkitDaemon().start()
    yield daemon
    daemon.remove()
