"""Real services for the tests: redis-server instances and an in-process exporter on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from cachewatch.collectors.enabled import build
from cachewatch.collectors.health import Health
from cachewatch.config import CoreSettings as Settings
from cachewatch.http import webconfig
from cachewatch.http.guard import LiveWebConfig
from cachewatch.http.server import create_app
from cachewatch.http.serving import make_server
from cachewatch.runtime import Runtime
from cachewatch.state import default_url, open_state

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"


def require(binary: str, package: str) -> str:
    """Path of ``binary``; skip when absent locally, fail under CI=true (never a silent skip)."""
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} not found: install the Debian package {package} (make test does)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``check()`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class RedisServer:
    """One real redis-server on a loopback port in its own directory."""

    def __init__(self, workdir: Path, *args: str, tls: bool = False) -> None:
        self.binary = require("redis-server", "redis-server")
        self.workdir = workdir
        self.args = list(args)
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_args = (["--port", "0", "--tls-port", str(self.port)] if self.tls
                     else ["--port", str(self.port)])
        self.proc = subprocess.Popen(
            [self.binary, *port_args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
             *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._listening, timeout=10)
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            logfile = self.workdir / "redis.log"
            log = logfile.read_text() if logfile.exists() else ""
            raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {log[-2000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]


class MemcachedServer:
    """One real memcached (Debian's package) on a loopback port."""

    def __init__(self, *args: str) -> None:
        self.binary = require("memcached", "memcached")
        self.args = list(args)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> MemcachedServer:
        self.proc = subprocess.Popen(
            [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
             "-u", "root", *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, timeout=10)
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"memcached exited ({self.proc.returncode})")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def send(self, request: bytes, replies: int = 1) -> list[bytes]:
        """Send raw text-protocol ``request``; the first line of each of its ``replies``
        (``STORED``, ``END``, ``VALUE k 0 1``...), read to the reply's end."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            data = b""
            while data.count(b"END\r\n") + data.count(b"STORED\r\n") < replies:
                chunk = sock.recv(65536)
                assert chunk, f"memcached closed the connection after {data!r}"
                data += chunk
        return [line for line in data.split(b"\r\n") if line]

    def set(self, key: str, value: bytes = b"v", ttl: int = 0) -> None:
        assert self.send(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), ttl, len(value), value)) \
            == [b"STORED"]

    def get(self, *keys: str) -> list[bytes]:
        """One ``get`` per key; the lines of every reply."""
        return self.send(b"".join(b"get %s\r\n" % k.encode() for k in keys), replies=len(keys))

    def stats(self) -> dict[str, str]:
        lines = self.send(b"stats\r\n")
        return {k.decode(): v.decode() for _, k, v in (line.split(b" ", 2)
                                                       for line in lines[:-1])}


class Exporter:
    """The real app on a real server (``serving``, as ``cachewatch serve`` runs it: web config,
    limits, TLS), in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, health: Health | None = None,
                 port: int | None = None) -> None:
        if settings.state.url == default_url():
            raise ValueError("a test chooses its own state (memory:// or a file in tmp_path),"
                             " never the user's default file")
        self.settings = settings
        self.port = port or free_port()
        self.runtime = Runtime(health, open_state(settings.state, self.port),
                               body_budget=settings.web.max_inflight_body_bytes)
        self.health = self.runtime.health
        self.collectors = build(settings, self.runtime)
        self.web = LiveWebConfig(webconfig.load(settings.web.config_file))
        self.app = create_app(self.collectors, self.runtime,
                              probe_allow=settings.probe.allow_list(), web=self.web)
        scheme = "https" if self.web.current.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.server = make_server(self.app, "127.0.0.1", self.port, settings.web, self.web,
                                  self.runtime.refusals)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Exporter:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def scrape(self, path: str = "/metrics") -> Metrics:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return Metrics(response.text)


class Metrics:
    """A parsed text exposition: look samples up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def find(self, name: str, **labels: str) -> list[float]:
        return [s.value for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, f"{name}{labels}: expected one sample, found {found}"
        return found[0]

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


@dataclass(frozen=True)
class Golden:
    """A source's golden scenario, ``GOLDEN`` in ``tests/sources/<name>/golden.py``: its whole
    ``/metrics`` with only ``sections`` enabled (and ``overrides`` set), after ``feed`` sent the
    exporter its fixed inputs; ``tests/core/test_golden.py`` compares it with
    ``tests/golden/<name>.prom``."""

    sections: tuple[str, ...]
    feed: Callable[[Exporter], None]
    overrides: dict[str, object] = field(default_factory=dict)
    # Replaces what the source would read from a live service by captured replies.
    prepare: Callable[[pytest.MonkeyPatch], None] | None = None


def settings(targets: Iterable[object], **overrides: object) -> Settings:
    """Test settings: given Redis targets, probes off unless asked, quick timeout, state in
    memory unless a test asks for a store (no test sees another's counts)."""
    from cachewatch.config import load_settings

    values: dict[str, object] = {"redis.targets": list(targets), "redis.probe_interval": 0,
                                 "redis.timeout": 1.0, "state.url": "memory://"}
    values.update(overrides)
    return load_settings(**values)


DOCKER_CLI = "/usr/bin/docker"  # Debian's 20.10 client: BuildKit without buildx, and legacy


class DockerEngine:
    """A real dockerd on a private socket in a short temporary folder (socket paths ~100 bytes)."""

    def __init__(self) -> None:
        self.dockerd = require("dockerd", "docker.io")
        if not Path(DOCKER_CLI).exists():
            require("docker-20.10-client", "docker.io")
        if os.geteuid() != 0:
            message = "dockerd needs root here"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="cw-dk."))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DockerEngine:
        log = (self.root / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            [self.dockerd, "--data-root", str(self.root / "root"), "--exec-root",
             str(self.root / "exec"), "-H", self.host, "--pidfile", str(self.root / "pid"),
             "--iptables=false", "--bridge=none", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ping, timeout=60, interval=0.2)
        return self

    def _ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("dockerd exited: " + (self.root / "dockerd.log").read_text()[-2000:])
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, timeout=2) as client:
            return client.get("http://docker/_ping").text == "OK"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["umount", "-R", str(self.root / "root")], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self, buildkit: bool = True) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1" if buildkit else "0"}

    def cli(self, *args: str, buildkit: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True, timeout=300,
                              env=self.env(buildkit), check=False)


class BuildContext:
    """A FROM-scratch build context with a static busybox made unique to this context.

    Bytes appended to the busybox binary (ELF ignores them) give each context its own layer
    digests, so a test's first build is cold even when other tests built the same Dockerfile.
    """

    DOCKERFILE = (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "COPY app.txt /app.txt\n"
        'RUN ["/bin/busybox","sh","-c","/bin/busybox cat /app.txt > /copy.txt"]\n'
        'RUN ["/bin/busybox","sh","-c","echo three > /three.txt"]\n'
    )

    def __init__(self, path: Path, dockerfile: str | None = None) -> None:
        import uuid

        busybox = Path(require("busybox", "busybox-static"))
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "busybox").write_bytes(busybox.read_bytes() + uuid.uuid4().bytes)
        (path / "busybox").chmod(0o755)
        (path / "app.txt").write_text("v1\n")
        (path / "Dockerfile").write_text(dockerfile or self.DOCKERFILE)

    def touch_app(self, content: str) -> None:
        (self.path / "app.txt").write_text(content)


class Prometheus:
    """A real Prometheus scraping the given targets every second, for PromQL checks."""

    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path] = (),
                 alertmanager: str | None = None,
                 labels: list[dict[str, str]] | None = None, scrape: dict | None = None) -> None:
        """``scrape``: more keys for the scrape config (``scheme``, ``basic_auth``,
        ``tls_config``, ...)."""
        self.binary = require("prometheus", "prometheus")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            # one target group per label set: the same targets as several members of a fleet
            "scrape_configs": [{"job_name": "cachewatch", "static_configs": [
                {"targets": targets, **({"labels": group} if group else {})}
                for group in (labels or [{}])], **(scrape or {})}],
        }
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager]}]}]}
        import yaml

        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "prometheus.log").open("wb"))
        wait_until(lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
                   timeout=30)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def target_error(self) -> str:
        """The last scrape error of the first active target ("" when it scraped fine)."""
        body = httpx.get(self.url + "/api/v1/targets", timeout=10).json()
        return body["data"]["activeTargets"][0]["lastError"]


class RegistryServer:
    """A real Distribution registry (docker-registry) on loopback, optionally a pull-through
    cache of another, optionally notifying an exporter."""

    def __init__(self, workdir: Path, *, notify: str | None = None, token: str | None = None,
                 proxy_of: str | None = None) -> None:
        self.binary = require("docker-registry", "docker-registry")
        self.workdir = workdir
        self.port, self.debug_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.debug_url = f"http://127.0.0.1:{self.debug_port}"
        config: dict = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.address, "debug": {
                "addr": f"127.0.0.1:{self.debug_port}",
                "prometheus": {"enabled": True, "path": "/metrics"}}},
        }
        if notify:
            endpoint = {"name": "cachewatch", "url": notify, "timeout": "1s",
                        "threshold": 2, "backoff": "1s"}
            if token:
                endpoint["headers"] = {"Authorization": [f"Bearer {token}"]}
            config["notifications"] = {"endpoints": [endpoint]}
        if proxy_of:
            config["proxy"] = {"remoteurl": proxy_of}
        import yaml

        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        self.proc = subprocess.Popen([self.binary, "serve", str(self.workdir / "config.yml")],
                                     stdout=subprocess.DEVNULL,
                                     stderr=(self.workdir / "registry.log").open("wb"))
        wait_until(lambda: httpx.get(self.url + "/v2/", timeout=2).status_code == 200,
                   timeout=20)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def debug_vars(self) -> dict:
        return httpx.get(self.debug_url + "/debug/vars", timeout=5).json()

    def manifest(self, repository: str, reference: str) -> dict:
        return httpx.get(f"{self.url}/v2/{repository}/manifests/{reference}", timeout=5,
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
                         ).json()


class Alertmanager:
    """A real Alertmanager that sends every notification to ``webhook`` at once."""

    def __init__(self, workdir: Path, webhook: str) -> None:
        self.binary = require("prometheus-alertmanager", "prometheus-alertmanager")
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        import yaml

        (workdir / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "test", "group_by": ["alertname", "cache"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "test", "webhook_configs": [
                {"url": webhook, "send_resolved": True}]}],
        }))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Alertmanager:
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.workdir / 'alertmanager.yml'}",
             f"--storage.path={self.workdir / 'data'}", f"--web.listen-address={self.address}",
             "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "alertmanager.log").open("wb"))
        wait_until(lambda: httpx.get(f"http://{self.address}/-/ready", timeout=2)
                   .status_code == 200, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class WebhookReceiver:
    """Collects the JSON bodies POSTed to it (Alertmanager's webhook notifications)."""

    def __init__(self) -> None:
        import http.server
        import json

        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, name: str, status: str) -> list[dict]:
        return [a for body in list(self.received) for a in body["alerts"]
                if a["labels"].get("alertname") == name and a["status"] == status]

    def stop(self) -> None:
        self.server.shutdown()


class HostileRedis:
    """A TCP server on loopback that answers any command with ``reply()``'s chunks, sent lazily
    as fast as the client reads (a huge INFO, a line without end, a trickle).

    Bounded: it stops at ``max_bytes`` sent or ``max_seconds``, and counts what it sent, so a
    test can tell how much a client read without the server ever holding it in memory.
    """

    def __init__(self, reply, max_bytes: int = 600 << 20, max_seconds: float = 20.0) -> None:
        self.reply = reply
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.sent = 0
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self.max_seconds
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)  # the command (or AUTH): whatever it is, the reply is hostile
                for chunk in self.reply():
                    if self._stop.is_set() or self.sent >= self.max_bytes \
                            or time.monotonic() > deadline:
                        return
                    conn.sendall(chunk)
                    self.sent += len(chunk)
            except OSError:
                return  # the client hung up: what a bounded reader does

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


def rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def promtool_clean(exposition: str) -> None:
    """``promtool check metrics`` accepts the text with no lint warning at all."""
    promtool = require("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "metrics"], input=exposition,
                             capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == "", checked.stdout + checked.stderr


class HarborStandIn:
    """A stand-in for Harbor's replication API (Harbor cannot run here): each
    ``GET /api/v2.0/replication/executions`` answers ``pages(n)`` for the n-th poll (from 0),
    ``GET /api/v2.0/replication/policies/{id}`` answers ``policies[id]``."""

    def __init__(self, pages: Callable[[int], list[dict]] | list[dict],
                 policies: dict[int, dict]) -> None:
        import http.server
        import json

        self.pages = pages if callable(pages) else (lambda n: pages)
        self.polls = 0
        self.auth: list[str] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.auth.append(self.headers.get("Authorization", ""))
                if self.path.startswith("/api/v2.0/replication/executions"):
                    body = json.dumps(stand_in.pages(stand_in.polls)).encode()
                    stand_in.polls += 1
                elif self.path.startswith("/api/v2.0/replication/policies/"):
                    body = json.dumps(policies[int(self.path.rsplit("/", 1)[1])]).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BuildkitDaemon:
    """A real buildkitd (v0.11.6, built from ``../shared/buildkit/`` once and cached), as root,
    on a unix socket in a short temporary folder (socket paths ~100 bytes). ``stop()`` then
    ``start()`` restarts it on the same root: its history survives, as in production."""

    BUILD_SCRIPT = ROOT.parent / "shared" / "buildkit" / "build.sh"

    def __init__(self, tcp: tuple[int, dict[str, Path]] | None = None) -> None:
        """``tcp``: also listen on 127.0.0.1:port with TLS (CA, server cert and key files)."""
        import tempfile

        require("runc", "runc")
        require("go", "golang-go")
        message = ""
        if os.geteuid() != 0:
            message = "buildkitd needs root here"
        elif not self.BUILD_SCRIPT.is_file():
            message = f"{self.BUILD_SCRIPT} not found (the BuildKit source for tests)"
        if message:
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        built = subprocess.run(["bash", str(self.BUILD_SCRIPT)], capture_output=True, text=True,
                               timeout=1200, check=False)
        if built.returncode != 0:
            pytest.fail("building buildkitd failed: " + built.stderr[-2000:])
        self.bin = Path(built.stdout.strip())
        self.root = Path(tempfile.mkdtemp(prefix="cw-bk."))
        self.address = f"unix://{self.root / 's'}"
        self.tcp = tcp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BuildkitDaemon:
        args = [str(self.bin / "buildkitd"), "--root", str(self.root / "root"),
                "--addr", self.address, "--oci-worker=true", "--containerd-worker=false"]
        if self.tcp is not None:
            port, files = self.tcp
            args += ["--addr", f"tcp://127.0.0.1:{port}", "--tlscacert", str(files["ca"]),
                     "--tlscert", str(files["cert"]), "--tlskey", str(files["key"])]
        log = (self.root / "buildkitd.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=60, interval=0.1)
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("buildkitd exited: " +
                               (self.root / "buildkitd.log").read_text()[-2000:])
        return self.ctl("debug", "workers").returncode == 0

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / "buildctl"), "--addr", self.address, *args],
                              capture_output=True, text=True, timeout=300, check=False)

    def build_args(self, context: Path, image: str | None = None, *opts: str) -> list[str]:
        """``buildctl build`` of a Dockerfile context, plain progress; ``image`` names the
        image exporter (the ``image`` label), ``opts`` are frontend options (``target=x``)."""
        args = [str(self.bin / "buildctl"), "--addr", self.address, "build",
                "--frontend", "dockerfile.v0", "--local", f"context={context}",
                "--local", f"dockerfile={context}", "--progress", "plain"]
        if image:
            args += ["--output", f"type=image,name={image}"]
        for opt in opts:
            args += ["--opt", opt]
        return args

    def build(self, context: Path, image: str | None = None,
              *opts: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.build_args(context, image, *opts), capture_output=True,
                              text=True, timeout=300, check=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        subprocess.run(["umount", "-R", str(self.root / "root")], capture_output=True,
                       check=False)
        shutil.rmtree(self.root, ignore_errors=True)
