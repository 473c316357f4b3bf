"""Registry webhook throughput for each state store, side by side with a bare ASGI app, in one run.

The ceiling is a bare uvicorn app that only reads the body and answers 200: what any Python
receiver on this machine could do at best. The floor of cachewatch's own HTTP stack is that same
app served as the webhook endpoint by `cachewatch serve` (its protocol, guard and dispatch):
what separates it from the ceiling is the HTTP layer's cost, what separates the receivers from
it is their own. cachewatch runs once per state store: `memory://`
(keeps nothing), SQLite (`synchronous=normal`, survives kill -9; with `--sqlite-full` also
`full`, survives power loss), and a real redis-server (`redis-server` Debian package) with an
append-only file synced every second. Every receiver gets the same load from `wrk` (Debian
package), one Distribution envelope of one event per request, each event with a unique id (so
de-duplication does real work), at 1 and at 16 concurrent senders.

Rounds are interleaved (every receiver runs once per round, so a change in the machine's load
hits all of them) and each ratio is taken inside a round, then the median over rounds is
printed: the overhead rows (`row: ...`, collected by benchmarks/run_all.py), the same ratios
from each server's CPU time per request (`cpu: ...`: what the two would do with a core each,
steadier than events/s when others load the machine), the table of every receiver, the part
of a request each step costs (benchmarks/webhook_cost.py), and a check that each exporter
counted every event it acknowledged.

    python benchmarks/webhook_throughput.py [--seconds 3] [--rounds 5] [--sqlite-full]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

import webhook_cost  # benchmarks/, beside this file

LUA = textwrap.dedent("""
    -- one Distribution envelope per request; every event id unique (run, thread, counter)
    -- globals, not locals: setup() runs in the main state and sets each thread's own `tid`
    counter = 0
    threads = 0
    run = "run"
    function setup(thread) threads = threads + 1; thread:set("tid", threads) end
    function init(args) run = args[1] or run end
    function request()
      counter = counter + 1
      local body = string.format([[{"events":[{"id":"%s-%s-%d","timestamp":"2026-11-24T12:00:00Z",
        "action":"pull","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",
        "size":1024,"length":1024,"digest":"sha256:0000","repository":"team/app%d",
        "url":"http://r/v2/x"},"request":{"id":"r","addr":"127.0.0.1:1","host":"r:5000",
        "method":"GET","useragent":"bench"},"actor":{},"source":{"addr":"r:5000",
        "instanceID":"i"}}]}]], run, tid, counter, counter % 50)
      return wrk.format("POST", nil, {["Content-Type"] =
        "application/vnd.docker.distribution.events.v2+json"}, body)
    end
""")

BARE_APP = textwrap.dedent("""
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"accepted":1}'})
""")
BARE = BARE_APP + textwrap.dedent("""
    import sys, uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")
# cachewatch's own HTTP stack (its uvicorn protocol, the guard, the fast-path dispatch) with the
# bare app above as the webhook endpoint: the most any receiver inside cachewatch can do, so the
# gap between it and the bare uvicorn app is the HTTP layer's, the rest the receiver's own.
STACK = BARE_APP + textwrap.dedent("""
    import sys
    from cachewatch import cli
    from cachewatch.http import server

    create_app = server.create_app

    def with_bare_endpoint(*args, **kwargs):
        served = create_app(*args, **kwargs)
        served.app.paths["/webhooks/registry"] = app  # the guard's app: the fast-path dispatch
        return served

    server.create_app = with_bare_endpoint
    sys.argv = ["cachewatch", "serve", "--listen-address", "127.0.0.1", "--port", sys.argv[1],
                "--disable-collector", "redis", "--log-level", "warning",
                "--state-url", "memory://"]
    cli.main()
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def start(stack: ExitStack, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start a server for the length of ``stack``; its pid."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    return proc.pid


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, connections: int, seconds: int, run: str
        ) -> tuple[float, float, int]:
    """(requests/s, p99 ms, requests) from one wrk run; ``run`` makes its event ids unique."""
    out = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(script), url, "--", run],
        capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx.group(1)} requests failed")
    return rate, p99, requests


def redis_server(stack: ExitStack, folder: Path) -> str | None:
    """A throwaway redis-server with an append-only file (fsync every second), or None."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    start(stack, [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                  "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"])
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def stores(stack: ExitStack, tmp: Path, sqlite_full: bool
           ) -> tuple[dict[str, list[str]], str | None]:
    """Receiver name -> the `serve` arguments choosing its state; and the Redis URL, if any."""
    chosen = {
        "memory://": ["--state-url", "memory://"],
        "sqlite (normal)": ["--state-url", f"sqlite:///{tmp}/normal.db"],
    }
    if sqlite_full:
        chosen["sqlite (full)"] = ["--state-url", f"sqlite:///{tmp}/full.db"]
    redis_url = redis_server(stack, tmp)
    if redis_url:
        chosen["redis (aof everysec)"] = ["--state-url", redis_url]
    else:
        print("redis-server not found (apt-get install redis-server): redis state skipped")
    return chosen, redis_url


def counted(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cachewatch_registry_blob_pulls_total{"))


Result = tuple[float, float, int, float]  # events/s, p99 ms, requests, server CPU us/request
FLOOR = "cachewatch stack, bare endpoint"


def run_rounds(targets: dict[str, tuple[str, int]], script: Path, args: argparse.Namespace
               ) -> dict[int, list[dict[str, Result]]]:
    """Senders -> one dict per round: every target's result, the targets run back to back.
    ``targets``: label -> (URL, server pid)."""
    out: dict[int, list[dict[str, Result]]] = {1: [], 16: []}
    for round_ in range(args.rounds):  # interleaved: a load change hits every receiver
        for connections in out:
            results = {}
            for label, (url, pid) in targets.items():
                used = cpu_seconds(pid)
                rate, p99, requests = wrk(url + "/webhooks/registry", script, connections,
                                          args.seconds, f"{url}-{connections}-{round_}")
                cpu = (cpu_seconds(pid) - used) / max(requests, 1) * 1e6
                results[label] = (rate, p99, requests, cpu)
            out[connections].append(results)
    return out


def median_ratio(rounds: list[dict[str, Result]], top: str, bottom: str) -> float:
    """The median over rounds of ``top``'s events/s over ``bottom``'s in the same round."""
    return statistics.median(r[top][0] / r[bottom][0] for r in rounds)


def median_rate(rounds: list[dict[str, Result]], label: str) -> float:
    return statistics.median(r[label][0] for r in rounds)


def median_cpu_ratio(rounds: list[dict[str, Result]], top: str, bottom: str) -> float:
    """The median over rounds of ``bottom``'s server CPU per request over ``top``'s: the
    events/s ratio the two would have with a core each to themselves (steadier than events/s
    on a machine that others load)."""
    return statistics.median(r[bottom][3] / r[top][3] for r in rounds)


def print_rows(by_senders: dict[int, list[dict[str, Result]]]) -> None:
    """The overhead-table rows, each a median of per-round ratios, with its peer and ceiling."""
    bare, memory = "bare uvicorn (ceiling)", "cachewatch, memory://"
    sqlite, redis = "cachewatch, sqlite (normal)", "cachewatch, redis (aof everysec)"
    rounds = len(by_senders[1])
    for senders, label in ((1, "1 sender"), (16, "16 senders")):
        runs = by_senders[senders]
        print(f"floor, {label}: cachewatch's HTTP stack with a bare endpoint / bare uvicorn = "
              f"{median_ratio(runs, FLOOR, bare):.2f}x; memory state / that floor = "
              f"{median_ratio(runs, memory, FLOOR):.2f}x [median of {rounds} rounds]")
    for senders, label in ((1, "1 sender"), (16, "16 senders")):
        runs = by_senders[senders]
        print(f"row: registry webhook events/s / bare ASGI, {label} = "
              f"{median_ratio(runs, memory, bare):.2f}x (goal >= 0.8x) [memory state "
              f"{median_rate(runs, memory):.0f} events/s, bare uvicorn "
              f"{median_rate(runs, bare):.0f}/s; median of {rounds} interleaved rounds]")
    for senders, label in ((1, "1 sender"), (16, "16 senders")):
        runs = by_senders[senders]
        print(f"cpu, {label}: server CPU per request, bare uvicorn / cachewatch: memory state "
              f"{median_cpu_ratio(runs, memory, bare):.2f}x, HTTP stack with a bare endpoint "
              f"{median_cpu_ratio(runs, FLOOR, bare):.2f}x [bare "
              f"{statistics.median(r[bare][3] for r in runs):.0f} us, memory "
              f"{statistics.median(r[memory][3] for r in runs):.0f} us; median of {rounds} "
              f"rounds]")
    one, many = by_senders[1], by_senders[16]
    print(f"row: sqlite state / memory = {median_ratio(one, sqlite, memory):.2f}x "
          f"(goal >= 0.8x) [1 sender: sqlite {median_rate(one, sqlite):.0f} events/s, memory "
          f"{median_rate(one, memory):.0f}/s; at 16 senders "
          f"{median_ratio(many, sqlite, memory):.2f}x; median of {rounds} rounds]")
    if redis in one[0]:
        print(f"row: redis state / memory, 1 sender = {median_ratio(one, redis, memory):.2f}x "
              f"(goal >= 0.6x) [redis-server, AOF fsync every second: "
              f"{median_rate(one, redis):.0f} events/s; at 16 senders "
              f"{median_ratio(many, redis, memory):.2f}x; median of {rounds} rounds]")


def print_table(by_senders: dict[int, list[dict[str, Result]]]) -> None:
    print(f"{'senders':<9}{'receiver':<34}{'events/s':>10}{'p99 ms':>9}{'CPU us':>8}"
          f"{'/ bare':>8}{'/ memory':>10}")
    for senders, runs in by_senders.items():
        for index, label in enumerate(runs[0]):
            rate = median_rate(runs, label)
            p99 = statistics.median(r[label][1] for r in runs)
            cpu = statistics.median(r[label][3] for r in runs)
            over_bare = median_ratio(runs, label, "bare uvicorn (ceiling)")
            over_memory = (f"{median_ratio(runs, label, 'cachewatch, memory://'):>10.2f}"
                           if label.startswith("cachewatch") else "")
            print(f"{senders if index == 0 else '':<9}{label:<34}{rate:>10.0f}{p99:>9.2f}"
                  f"{cpu:>8.0f}{over_bare:>8.2f}{over_memory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5,
                        help="runs per receiver and sender count, interleaved; medians shown")
    parser.add_argument("--sqlite-full", action="store_true",
                        help="also SQLite with synchronous=full (an fsync per commit)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        script = tmp / "envelope.lua"
        script.write_text(LUA)
        bare_port = free_port()
        (tmp / "bare.py").write_text(BARE)
        bare_pid = start(stack, [sys.executable, str(tmp / "bare.py"), str(bare_port)])
        bare = f"http://127.0.0.1:{bare_port}"
        floor_port = free_port()
        (tmp / "stack.py").write_text(STACK)
        floor_pid = start(stack, [sys.executable, str(tmp / "stack.py"), str(floor_port)])
        floor = f"http://127.0.0.1:{floor_port}"
        receivers: dict[str, str] = {}
        pids: dict[str, int] = {}
        chosen, redis_url = stores(stack, tmp, args.sqlite_full)
        for name, state in chosen.items():
            port = free_port()
            full = {"CACHEWATCH_STATE__SQLITE_SYNCHRONOUS": "full"} if "full" in name else None
            pids[name] = start(stack, [
                sys.executable, "-m", "cachewatch", "serve", "--listen-address", "127.0.0.1",
                "--port", str(port), "--disable-collector", "redis", "--log-level", "warning",
                *state], env=full)
            receivers[name] = f"http://127.0.0.1:{port}"
        wait_http(bare + "/")
        wait_http(floor + "/healthz")
        for url in receivers.values():
            wait_http(url + "/healthz")
        print(f"one event per envelope, {args.seconds}s per run, medians of {args.rounds} "
              f"interleaved rounds, wrk on the same {os.cpu_count()} cores (load average now "
              f"{os.getloadavg()[0]:.1f})")
        targets = {"bare uvicorn (ceiling)": (bare, bare_pid), FLOOR: (floor, floor_pid),
                   **{f"cachewatch, {name}": (url, pids[name])
                      for name, url in receivers.items()}}
        by_senders = run_rounds(targets, script, args)
        print_rows(by_senders)
        print_table(by_senders)
        for name, url in receivers.items():
            sent = sum(r[f"cachewatch, {name}"][2] for runs in by_senders.values()
                       for r in runs)
            print(f"{name}: events acknowledged {sent}, blob pulls counted "
                  f"{counted(url):.0f}")
        print()
        webhook_cost.report(webhook_cost.breakdown(redis_url))


if __name__ == "__main__":
    main()
