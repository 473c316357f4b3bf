"""Scrape latency and RSS of cachewatch vs prometheus-redis-exporter, same Redis servers, one run.

Starts 10 real redis-servers with some data and traffic, then:
  * 1 target:   cachewatch /metrics (one target configured) vs redis_exporter /metrics
  * 10 targets: cachewatch /metrics (ten targets configured, read in parallel) vs redis_exporter
                scraped the way Prometheus would, ten concurrent /scrape?target= requests
Scrapes alternate between the two exporters so machine noise hits both alike. Each request
carries Prometheus' own Accept and Accept-Encoding headers. Prints median and p99 latency, RSS
and the ratios. Everything runs on loopback and stops by itself.

    python benchmarks/scrape_redis.py [--scrapes 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
              "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {timeout}s")


def start(stack: ExitStack, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    return proc


def start_redis(stack: ExitStack, workdir: Path) -> int:
    port = free_port()
    start(stack, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(workdir)], workdir / f"redis-{port}.log")
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    # some keys in two databases, hits, misses and a spread of commands for latencystats
    client.mset({f"key:{i}": i for i in range(1000)})
    redis.Redis(port=port, db=1).mset({f"other:{i}": i for i in range(100)})
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        pipe.get(f"key:{i}")
        pipe.incr("counter")
        pipe.hset("hash", f"f{i % 50}", i)
        pipe.lpush("list", i)
    pipe.execute()
    return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=PROMETHEUS_HEADERS)
    response.read()
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300, help="scrapes per exporter and case")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    go = shutil.which("prometheus-redis-exporter")
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server not found: apt-get install redis-server")
    if not go:
        raise SystemExit("prometheus-redis-exporter not found: apt-get install "
                         "prometheus-redis-exporter (the peer this benchmark compares with)")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ports = [start_redis(stack, workdir) for _ in range(10)]
        urls = [f"redis://127.0.0.1:{p}" for p in ports]

        def cachewatch(targets: list[str], name: str) -> tuple[str, int]:
            port = free_port()
            argv = [sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
                    "--port", str(port), "--log-level", "warning", "--state-url", "memory://"]
            for target in targets:
                argv += ["--redis-target", target]
            proc = start(stack, argv, workdir / f"{name}.log")
            wait_http(f"http://127.0.0.1:{port}/readyz")
            return f"http://127.0.0.1:{port}", proc.pid

        cw1, cw1_pid = cachewatch(urls[:1], "cachewatch-1")
        cw10, cw10_pid = cachewatch(urls, "cachewatch-10")
        go_port = free_port()
        go_proc = start(stack, [go, "-redis.addr", urls[0],
                                "-web.listen-address", f"127.0.0.1:{go_port}"],
                        workdir / "redis_exporter.log")
        go_url = f"http://127.0.0.1:{go_port}"
        wait_http(go_url + "/metrics")

        client = httpx.Client(timeout=30)
        pool = ThreadPoolExecutor(max_workers=10)

        def go_ten() -> float:
            started = time.perf_counter()
            list(pool.map(lambda u: timed(client, f"{go_url}/scrape?target={u}"), urls))
            return time.perf_counter() - started

        cases = {
            "1 target": (lambda: timed(client, cw1 + "/metrics"),
                         lambda: timed(client, go_url + "/metrics")),
            "10 targets": (lambda: timed(client, cw10 + "/metrics"), go_ten),
        }
        results: dict[str, tuple[list[float], list[float]]] = {}
        for case, (ours, theirs) in cases.items():
            for _ in range(args.warmup):
                ours()
                theirs()
            mine: list[float] = []
            peer: list[float] = []
            for _ in range(args.scrapes):  # alternate: both see the same noise
                mine.append(ours())
                peer.append(theirs())
            results[case] = (mine, peer)

        sizes = {
            "cachewatch 1": len(client.get(cw1 + "/metrics").text.splitlines()),
            "redis_exporter 1": len(client.get(go_url + "/metrics").text.splitlines()),
        }
        rss = {"1 target": (rss_mb(cw1_pid), rss_mb(go_proc.pid)),
               "10 targets": (rss_mb(cw10_pid), rss_mb(go_proc.pid))}
        pool.shutdown()
        client.close()

    print(f"scrape latency over {args.scrapes} scrapes each (ms), machine: {os.cpu_count()} cores")
    print(f"exposition lines for 1 target: cachewatch {sizes['cachewatch 1']}, "
          f"redis_exporter {sizes['redis_exporter 1']}")
    header = (f"{'case':<11}{'exporter':<34}{'median':>9}{'p99':>9}{'RSS MB':>9}")
    print(header)
    print("-" * len(header))
    for case, (mine, peer) in results.items():
        m_med, m_p99 = summary(mine)
        p_med, p_p99 = summary(peer)
        peer_name = ("redis_exporter /metrics" if case == "1 target"
                     else "redis_exporter 10x /scrape (parallel)")
        print(f"{case:<11}{'cachewatch /metrics':<34}{m_med:>9.2f}{m_p99:>9.2f}"
              f"{rss[case][0]:>9.1f}")
        print(f"{'':<11}{peer_name:<34}{p_med:>9.2f}{p_p99:>9.2f}{rss[case][1]:>9.1f}")
        print(f"{'':<11}{'ratio cachewatch / redis_exporter':<34}{m_med / p_med:>9.2f}"
              f"{m_p99 / p_p99:>9.2f}")


if __name__ == "__main__":
    main()
