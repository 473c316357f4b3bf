"""What a scrape of a three-master Redis Cluster costs next to a scrape of one Redis, in one run.

One cachewatch reads two targets: a cluster of three redis-servers (through one node it names)
and a single redis-server, each loaded with the same keys and traffic. ``/probe?target=`` reads
one of them per request, so the rounds alternate between the two on the same process and the
same machine noise. The goal is a cluster scrape within 1.5x of a single node's: the nodes are
read side by side, so a scrape costs the slowest node, not the sum of three.

Printed: p50 and p99 per target (the median over rounds), the series each exports, the ratio
and the nodes read per scrape. On loopback the round trips are a small part of a scrape and the
CPU of parsing and encoding each node's series is most of it, so the ratio follows the series
more than the node count (measured here: 2.2x at p50, 1.7x at p99, for 5x the series).
Everything runs on loopback and stops by itself. Needs redis-server and redis-cli (redis-tools).

    python benchmarks/scrape_redis_cluster.py [--rounds 6] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from scrape_redis import Http, free_port, gzip_text, raw_round, redis_command, start, wait_ready

GOAL = 1.5
KEYS = 3000


def start_node(stack: ExitStack, workdir: Path, *cluster: str) -> int:
    """A redis-server (a cluster node when ``cluster`` holds its options), answering."""
    port = free_port()
    workdir.mkdir()
    start(stack, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(workdir), *cluster], workdir / "redis.log")
    deadline = time.monotonic() + 10
    while True:
        try:
            redis_command(port)
            return port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_cluster(stack: ExitStack, workdir: Path) -> list[int]:
    ports = [start_node(stack, workdir / f"node{i}", "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-port", str(free_port())) for i in range(3)]
    subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-yes"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 20
    while not all(b"cluster_state:ok" in subprocess.run(
            ["redis-cli", "-p", str(p), "CLUSTER", "INFO"], capture_output=True).stdout
            for p in ports):
        if time.monotonic() > deadline:
            raise SystemExit("the cluster did not reach cluster_state:ok")
        time.sleep(0.1)
    return ports


def load(port: int) -> None:
    """The same keys, hits and misses on either target: ``redis-cli -c`` follows a cluster's
    MOVED redirections, so each key lands on the node owning its slot."""
    commands = "".join(f"SET key:{i} {i}\nGET key:{i}\nGET absent:{i}\n" for i in range(KEYS))
    subprocess.run(["redis-cli", "-c", "-p", str(port)], input=commands, text=True, check=True,
                   capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per target")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each round")
    args = parser.parse_args()
    for binary, package in (("redis-server", "redis-server"), ("redis-cli", "redis-tools")):
        if not shutil.which(binary):
            raise SystemExit(f"{binary} not found: apt-get install {package}")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cluster = make_cluster(stack, workdir)
        single = start_node(stack, workdir / "single")
        load(cluster[0])
        load(single)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEWATCH_")}
        start(stack, [sys.executable, "-m", "cachewatch", "serve", "--listen-address",
                      "127.0.0.1", "--port", str(port), "--state-url", "memory://",
                      "--redis-target", f"cluster=redis://127.0.0.1:{cluster[0]}",
                      "--redis-target", f"single=redis://127.0.0.1:{single}"],
              workdir / "cachewatch.log", env)
        wait_ready(port, "/readyz")
        warm = Http(port)
        for _ in range(50):
            warm.get("/probe?target=cluster")
            warm.get("/probe?target=single")
        warm.close()
        p50: dict[str, list[float]] = {"single": [], "cluster": []}
        p99: dict[str, list[float]] = {"single": [], "cluster": []}
        for _ in range(args.rounds):  # alternating: both targets see the same noise
            for target in p50:
                median, tail, _, _ = raw_round(port, f"/probe?target={target}", args.seconds)
                p50[target].append(median)
                p99[target].append(tail)
        client = Http(port)
        series = {t: sum(1 for line in gzip_text(client.get(f"/probe?target={t}")).splitlines()
                         if not line.startswith("#")) for t in p50}
        text = gzip_text(client.get("/metrics"))
        log = (workdir / "cachewatch.log").read_text()
    report(p50, p99, series, text, log)


def report(p50: dict[str, list[float]], p99: dict[str, list[float]], series: dict[str, int],
           metrics: str, log: str) -> None:
    print(f"{'target':<10}{'p50 ms':>10}{'p99 ms':>10}{'series':>10}")
    for target in p50:
        print(f"{target:<10}{statistics.median(p50[target]):>10.3f}"
              f"{statistics.median(p99[target]):>10.3f}{series[target]:>10}")
    ratio = statistics.median(p50["cluster"]) / statistics.median(p50["single"])
    tail = statistics.median(p99["cluster"]) / statistics.median(p99["single"])
    verdict = "within" if ratio <= GOAL else "ABOVE"
    print(f"cluster / single: p50 {ratio:.2f}x, p99 {tail:.2f}x ({verdict} the {GOAL}x goal)")
    nodes = metrics.count("cachewatch_redis_cluster_node_up{")
    print(f"cluster nodes read per scrape: {nodes}; the network waits overlap, the parsing and"
          " encoding of every node's series do not (on loopback they are most of a scrape)")
    if "Traceback" in log:
        raise SystemExit("the exporter logged a traceback:\n" + log[-2000:])


if __name__ == "__main__":
    main()
