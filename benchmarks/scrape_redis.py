"""What one scrape of one Redis costs cachewatch, next to prometheus-redis-exporter, in one run.

Both exporters read the same real redis-server (with keys, hits, misses and a spread of commands).
The load generator is wrk when installed (one thread, one keep-alive connection), else a raw
keep-alive HTTP/1.1 client on a socket: either way the figure is the exporter's, not an HTTP
library's. Rounds alternate between the exporters (and cachewatch's own ``/healthz``, the floor
of an answer from the same process), so machine noise hits all of them alike. Every request
carries Prometheus' own Accept and Accept-Encoding headers.

Printed: p50 and p99 latency (the median over rounds), requests/s, CPU per scrape (the process'
user + system time over the requests it answered), RSS after 200 scrapes and at the end, the
ratios, and the RSS floor: a bare Python importing exactly the third-party packages a serving
cachewatch imports. Everything runs on loopback and stops by itself.

    python benchmarks/scrape_redis.py [--rounds 6] [--seconds 2] [--client wrk|raw]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
              "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT, LEAN, PEER = "cachewatch", "cachewatch, no command histogram", "redis_exporter"
# cachewatch as it starts by default, and without the per-command latency histogram (10
# commands x 24 series): the exposition the first version of this benchmark measured.
CACHEWATCH = {DEFAULT: [], LEAN: ["--redis-latency-histogram-commands", "0"]}
# What the issue called "the stack": importing it is the floor any exporter built on it pays.
STACK_AS_REPORTED = ("fastapi", "uvicorn", "httptools", "redis", "prometheus_client",
                     "pydantic_settings", "yaml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Http:
    """A keep-alive HTTP/1.1 client on a raw socket: no library between the clock and the
    bytes. Reads ``Content-Length`` and chunked bodies (Go answers large bodies chunked)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def get(self, path: str) -> bytes:
        headers = "".join(f"{k}: {v}\r\n" for k, v in PROMETHEUS_HEADERS.items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode())
        status = self.file.readline()
        if b" 200 " not in status:
            raise SystemExit(f"GET {path}: {status!r}")
        length, chunked = None, False
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return self.file.read(length or 0)
        body = b""
        while (size := int(self.file.readline().split(b";")[0], 16)) > 0:
            body += self.file.read(size)
            self.file.readline()
        self.file.readline()
        return body

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Series:
    """Rounds of one endpoint of one exporter."""

    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for {pid}")


WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %d %f\\n", latency:percentile(50), latency:percentile(99),
    summary.requests, summary.duration))
end
"""


def wrk_round(wrk: str, script: Path, port: int, path: str, seconds: float
              ) -> tuple[float, float, int, float]:
    """(p50 ms, p99 ms, requests, seconds) from wrk, one thread on one connection."""
    argv = [wrk, "-t1", "-c1", f"-d{seconds:g}s", "-s", str(script)]
    for name, value in PROMETHEUS_HEADERS.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    p50, p99, requests, micros = line.split()[1:]
    if "Non-2xx" in out:
        raise SystemExit(f"{path} answered errors:\n{out}")
    return float(p50) / 1000, float(p99) / 1000, int(requests), float(micros) / 1e6


def raw_round(port: int, path: str, seconds: float) -> tuple[float, float, int, float]:
    """The same figures from the raw client."""
    client = Http(port)
    samples: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        client.get(path)
        samples.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    client.close()
    samples.sort()
    return (statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000,
            len(samples), elapsed)


def start(stack: ExitStack, argv: list[str], log: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    return proc


def wait_ready(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = Http(port)
            client.get(path)
            client.close()
            return
        except (OSError, SystemExit):
            time.sleep(0.05)
    raise SystemExit(f"127.0.0.1:{port}{path} did not answer within {timeout}s")


def redis_command(port: int, *commands: tuple[str, ...]) -> None:
    """Pipelined commands on a raw socket (the benchmark needs no Redis client library)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        payload = b"".join(
            b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                                           for a in c) for c in commands)
        sock.sendall(payload)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        received = b""
        while not received.endswith(b"+PONG\r\n"):
            received += sock.recv(65536)


def start_redis(stack: ExitStack, workdir: Path) -> int:
    port = free_port()
    start(stack, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(workdir)], workdir / "redis.log")
    deadline = time.monotonic() + 10
    while True:
        try:
            redis_command(port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    # keys in two databases, hits, misses and a spread of commands for latencystats
    redis_command(port, *(("SET", f"key:{i}", str(i)) for i in range(1000)))
    redis_command(port, ("SELECT", "1"), *(("SET", f"other:{i}", str(i)) for i in range(100)))
    redis_command(port, *(c for i in range(2000) for c in (
        ("GET", f"key:{i}"), ("INCR", "counter"), ("HSET", "hash", f"f{i % 50}", str(i)),
        ("LPUSH", "list", str(i)))))
    return port


def floor_mb(workdir: Path) -> tuple[float, list[str], float]:
    """RSS of a bare Python importing exactly the third-party packages that a serving cachewatch
    imports (found by building its app with the default settings), and of the stack as first
    reported (which counted redis-py and PyYAML, no longer imported)."""
    probe = ("import sys\n"
             "from cachewatch.cli import build_cli\n"
             "build_cli()\n"
             "from cachewatch.config import load_settings\n"
             "from cachewatch.runtime import Runtime\n"
             "from cachewatch.http.server import create_app\n"
             "from cachewatch.collectors.enabled import build\n"
             "import uvicorn.protocols.http.httptools_impl, uvicorn.loops.asyncio\n"
             "runtime = Runtime()\n"
             "create_app(build(load_settings(), runtime), runtime)\n"
             "print(' '.join(n for n, m in sys.modules.items()\n"
             "      if 'site-packages' in (getattr(m, '__file__', None) or '')))\n")
    modules = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             check=True, cwd=workdir).stdout.split()

    def imported(names: list[str] | tuple[str, ...]) -> float:
        code = (f"import importlib\nfor name in {names!r}:\n"
                "    try:\n        importlib.import_module(name)\n"
                "    except ImportError:\n        pass\n"
                "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0]"
                ".split()[1])")
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) / 1024

    packages = sorted({m.split(".")[0] for m in modules})
    return imported(modules), packages, imported(STACK_AS_REPORTED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds per endpoint (the rows want at least 5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each round")
    parser.add_argument("--client", choices=("wrk", "raw"),
                        default="wrk" if shutil.which("wrk") else "raw")
    args = parser.parse_args()
    peer = shutil.which("prometheus-redis-exporter")
    for binary, package in (("redis-server", "redis-server"),
                            ("prometheus-redis-exporter", "prometheus-redis-exporter")):
        if not shutil.which(binary):
            raise SystemExit(f"{binary} not found: apt-get install {package}")
    assert peer is not None

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = workdir / "report.lua"
        script.write_text(WRK_SCRIPT)
        redis_port = start_redis(stack, workdir)
        compile_cachewatch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEWATCH_")}
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        for name, extra in CACHEWATCH.items():
            ports[name] = free_port()
            # the default state backend (SQLite), in a file of its own, not the user's
            state = f"sqlite:///{workdir / (name.replace(' ', '-') + '.db')}"
            pids[name] = start(stack, [
                sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
                "--port", str(ports[name]), "--redis-target", f"redis://127.0.0.1:{redis_port}",
                "--state-url", state, *extra], workdir / f"{name}.log", env).pid
        ports[PEER], pids[PEER] = free_port(), 0
        pids[PEER] = start(stack, [peer, "-redis.addr", f"redis://127.0.0.1:{redis_port}",
                                   "-web.listen-address", f"127.0.0.1:{ports[PEER]}"],
                           workdir / "redis_exporter.log").pid
        for name in CACHEWATCH:
            wait_ready(ports[name], "/readyz")
        wait_ready(ports[PEER], "/metrics")

        lines, rss200 = {}, {}
        for name, port in ports.items():
            client = Http(port)
            for _ in range(200):  # a sidecar's first ~50 minutes of 15 s scrapes
                body = client.get("/metrics")
            client.close()
            lines[name] = len(gzip_text(body).splitlines())
            rss200[name] = rss_mb(pids[name])

        endpoints = {**{(name, "/metrics"): (ports[name], pids[name]) for name in ports},
                     (DEFAULT, "/healthz"): (ports[DEFAULT], pids[DEFAULT])}
        results = {key: Series() for key in endpoints}
        round_trips: list[float] = []
        for _ in range(args.rounds):  # interleaved: every endpoint sees the same noise
            round_trips += info_round_trips(redis_port, 200)
            for key, (port, pid) in endpoints.items():
                before = cpu_seconds(pid)
                if args.client == "wrk":
                    p50, p99, count, seconds = wrk_round(shutil.which("wrk") or "wrk", script,
                                                         port, key[1], args.seconds)
                else:
                    p50, p99, count, seconds = raw_round(port, key[1], args.seconds)
                series = results[key]
                series.p50.append(p50)
                series.p99.append(p99)
                series.rate.append(count / seconds)
                series.cpu.append((cpu_seconds(pid) - before) / count * 1000)
        rss_end = {name: rss_mb(pid) for name, pid in pids.items()}
        floor, packages, reported_floor = floor_mb(workdir)

    report(args, results, lines, rss200, rss_end, floor, packages, reported_floor,
           statistics.median(round_trips) * 1000)


def info_round_trips(port: int, count: int) -> list[float]:
    """The floor under a Redis scrape: the INFO sections cachewatch asks for, pipelined on a
    raw socket, timed from the first byte out to the last byte in."""
    request = b"".join(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(s), s)
                       for s in (b"default", b"latencystats", b"commandstats"))
    timings = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            data, replies = b"", 0
            while replies < 3:
                data += sock.recv(1 << 16)
                replies = _complete_bulks(data)
            timings.append(time.perf_counter() - started)
    return timings


def _complete_bulks(data: bytes) -> int:
    """How many whole bulk replies ``data`` holds."""
    count, pos = 0, 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end < 0 or data[pos:pos + 1] != b"$":
            break
        stop = end + 2 + int(data[pos + 1:end]) + 2
        if stop > len(data):
            break
        count, pos = count + 1, stop
    return count


def compile_cachewatch() -> None:
    """Byte-compile cachewatch as ``pip install`` does, so a checkout run under
    PYTHONDONTWRITEBYTECODE is not measured compiling its own source at start-up."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("cachewatch")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(str(Path(spec.origin).parent), quiet=1)


def gzip_text(body: bytes) -> str:
    import gzip

    return (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).decode()


def report(args: argparse.Namespace, results: dict[tuple[str, str], Series],
           lines: dict[str, int], rss200: dict[str, float], rss_end: dict[str, float],
           floor: float, packages: list[str], reported_floor: float,
           round_trip_ms: float) -> None:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    print(f"{time.strftime('%Y-%m-%d')}, {model}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load generator: {args.client}, "
          f"{args.rounds} rounds x {args.seconds:g} s per endpoint, interleaved; medians of the "
          "rounds")
    print()
    print("| exporter | endpoint | lines | p50 ms | p99 ms | req/s | CPU ms/scrape "
          "| RSS MB after 200 | RSS MB at end |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (name, path), series in results.items():
        size = f"{lines[name]}" if path == "/metrics" else ""
        rss = f"{rss200[name]:.1f} | {rss_end[name]:.1f}" if path == "/metrics" else " | "
        print(f"| {name} | `{path}` | {size} | {series.median('p50'):.3f} "
              f"| {series.median('p99'):.3f} | {series.median('rate'):.0f} "
              f"| {series.median('cpu'):.3f} | {rss} |")
    peer = results[(PEER, "/metrics")]
    health = results[(DEFAULT, "/healthz")]
    print()
    for name in CACHEWATCH:
        ours = results[(name, "/metrics")]
        print(f"{name} / redis_exporter: p50 {ours.median('p50') / peer.median('p50'):.2f}x, "
              f"p99 {ours.median('p99') / peer.median('p99'):.2f}x, CPU per scrape "
              f"{ours.median('cpu') / peer.median('cpu'):.2f}x, RSS "
              f"{rss200[name] / rss200[PEER]:.2f}x; /metrics p50 / cachewatch's /healthz p50: "
              f"{ours.median('p50') / health.median('p50'):.1f}x")
    print(f"the floor under a Redis scrape: INFO x3 pipelined on a raw socket, p50 "
          f"{round_trip_ms:.3f} ms")
    print(f"RSS floor (a bare Python importing the modules of {', '.join(packages)} that a "
          f"serving cachewatch imports): {floor:.1f} MB; cachewatch after 200 scrapes: "
          f"{rss200[DEFAULT]:.1f} MB (+{rss200[DEFAULT] - floor:.1f} MB of its own)")
    print(f"the stack as first measured ({', '.join(STACK_AS_REPORTED)}): "
          f"{reported_floor:.1f} MB")
    print_rows(results, rss200[DEFAULT], floor)


def print_rows(results: dict[tuple[str, str], Series], rss: float, floor: float) -> None:
    """Issue 26's rows, one line each, in the shape ``make bench`` collects (``row: ...``).
    A ratio is the median of the per-round ratios: both sides of a round ran side by side."""
    ours, health = results[(DEFAULT, "/metrics")], results[(DEFAULT, "/healthz")]
    peer = results[(PEER, "/metrics")]
    latency = statistics.median(a / b for a, b in zip(ours.p50, health.p50, strict=True))
    cpu = statistics.median(a / b for a, b in zip(ours.cpu, peer.cpu, strict=True))
    rounds = len(ours.p50)
    print(f"row: /metrics p50 / /healthz p50 = {latency:.1f}x (goal <= 6x) "
          f"[{ours.median('p50'):.3f} ms vs {health.median('p50'):.3f} ms, median of {rounds} "
          "rounds]")
    print(f"row: scrape CPU / redis_exporter = {cpu:.2f}x (goal <= 0.5x) "
          f"[{ours.median('cpu'):.3f} ms vs {peer.median('cpu'):.3f} ms CPU per scrape, median "
          f"of {rounds} rounds]")
    print(f"row: RSS after 200 scrapes - floor = {rss - floor:.1f} MB (goal <= 3 MB) "
          f"[{rss:.1f} MB vs {floor:.1f} MB]")


if __name__ == "__main__":
    main()
