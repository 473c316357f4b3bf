"""Scrape latency and memory while the receivers are flooded.

A real `cachewatch serve` (its own process, so its memory is its own) takes at once: 8 senders
posting 40 MiB of random bytes as build logs to `/api/v1/builds` and 8 senders posting 8 MB
registry envelopes (about 100k events each) to `/webhooks/registry`, each sender several times,
while a scraper reads `/metrics` every 100 ms. Prints every scrape's latency (max and p99), the
server's peak and settled RSS and what the senders were answered. Goals (issue 27): every scrape
within 1 s, RSS under 300 MB, and RSS back near its baseline after the burst.

    python benchmarks/receiver_flood.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

MIB = 1024 * 1024
SCRAPE_GOAL_S = 1.0
RSS_GOAL_MB = 300.0


@dataclass
class Figures:
    """What one flood measured."""

    scrapes: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    baseline_mb: float = 0.0
    peak_mb: float = 0.0
    settled_mb: float = 0.0
    failed_scrapes: int = 0

    @property
    def worst_scrape(self) -> float:
        return max(self.scrapes, default=0.0)

    @property
    def p99_scrape(self) -> float:
        ordered = sorted(self.scrapes)
        return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak so far), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(key)


def envelope(events: int, run: str) -> bytes:
    """A Distribution envelope of ``events`` blob pulls, each with a unique id."""
    one = ('{"id":"%s-%d","action":"pull","target":{"mediaType":"application/octet-stream",'
           '"size":1,"digest":"sha256:0","repository":"team/app","url":"http://r/v2/x"},'
           '"request":{"method":"GET","host":"r:5000","useragent":"flood"}}')
    return ('{"events":[' + ",".join(one % (run, n) for n in range(events)) + "]}").encode()


def start(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """``cachewatch serve`` with the receivers on, no Redis, state in memory."""
    env = {**os.environ, "CACHEWATCH_STATE__URL": "memory://"}
    server = subprocess.Popen(
        [sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
         "--port", str(port), "--disable-collector", "redis", "--log-level", "error"],
        env=env, stdout=subprocess.DEVNULL, stderr=(folder / "stderr").open("wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("cachewatch did not start: " + (folder / "stderr").read_text())


def scrape(url: str, stop: Any, results: Any) -> None:
    """Read ``url`` every 100 ms until ``stop``; send back every latency and the failures."""
    latencies, failed = [], 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = client.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.monotonic() - began)
            failed += not ok
            stop.wait(0.1)
    results.send((latencies, failed))


def flood(rounds: int = 3, senders: int = 8, log_mib: int = 40, events: int = 105_000,
          only: str = "") -> Figures:
    """Run one flood against a fresh server (``only``: ``builds`` or ``registry``); the
    figures it measured."""
    figures = Figures()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start(port, Path(folder))
        url = f"http://127.0.0.1:{port}"
        try:
            httpx.get(url + "/metrics", timeout=10)
            time.sleep(0.5)
            figures.baseline_mb = rss_mb(server.pid)
            garbage = os.urandom(log_mib * MIB)
            bodies = [envelope(events, f"s{n}") for n in range(senders)]
            lock = threading.Lock()

            def post(path: str, body: bytes, headers: dict[str, str]) -> None:
                with httpx.Client(timeout=120) as client:
                    for _ in range(rounds):
                        try:
                            status = str(client.post(url + path, content=body,
                                                     headers=headers).status_code)
                        except httpx.HTTPError as exc:
                            status = type(exc).__name__
                        with lock:
                            figures.answers[f"{path} {status}"] += 1

            # The scraper is a process of its own: in this one, the senders' threads would hold
            # the GIL and their waits would be counted as the exporter's.
            context = multiprocessing.get_context("fork")
            stop, (results, sent) = context.Event(), context.Pipe(duplex=False)
            scraper = context.Process(target=scrape, args=(url + "/metrics", stop, sent))
            scraper.start()
            threads = [threading.Thread(target=post, args=(
                "/api/v1/builds?image=flood", garbage, {"content-type": "text/plain"}))
                for _ in range(senders) if only != "registry"]
            threads += [threading.Thread(target=post, args=(
                "/webhooks/registry", body, {"content-type": "application/json"}))
                for body in bodies if only != "builds"]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(2)  # scrapes after the burst count too; memory settles
            stop.set()
            figures.scrapes, figures.failed_scrapes = results.recv()
            scraper.join()
            figures.peak_mb = rss_mb(server.pid, "VmHWM")
            figures.settled_mb = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=15)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="bodies each sender posts")
    parser.add_argument("--only", choices=("builds", "registry"), default="",
                        help="flood one receiver only")
    args = parser.parse_args()
    figures = flood(args.rounds, only=args.only)
    print(f"scrapes during the flood:  {len(figures.scrapes)} "
          f"({figures.failed_scrapes} failed)")
    print(f"scrape latency:            max {figures.worst_scrape * 1000:.0f} ms, "
          f"p99 {figures.p99_scrape * 1000:.0f} ms   (goal: every scrape < "
          f"{SCRAPE_GOAL_S * 1000:.0f} ms)")
    print(f"RSS:                       baseline {figures.baseline_mb:.0f} MB, peak "
          f"{figures.peak_mb:.0f} MB, after the burst {figures.settled_mb:.0f} MB   "
          f"(goal: peak < {RSS_GOAL_MB:.0f} MB)")
    print("answers:                   " + json.dumps(dict(sorted(figures.answers.items()))))
    met = figures.worst_scrape < SCRAPE_GOAL_S and figures.peak_mb < RSS_GOAL_MB \
        and not figures.failed_scrapes
    print("goals met" if met else "GOALS MISSED")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
