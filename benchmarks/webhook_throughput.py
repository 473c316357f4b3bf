"""Registry webhook throughput and latency, side by side with a bare uvicorn endpoint.

The ceiling is a bare uvicorn app that only reads the body and answers 200: what any Python
receiver on this machine could do at best. Both get the same load from `wrk` (Debian package),
one Distribution envelope per request, each event with a unique id (so de-duplication does
real work), at 1 and at 16 concurrent senders. Prints events/s and p99 latency, and the ratio.

    python benchmarks/webhook_throughput.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

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

BARE = textwrap.dedent("""
    import sys, uvicorn

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

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
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


def start(stack: ExitStack, argv: list[str]) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)


def wrk(url: str, script: Path, connections: int, seconds: int) -> tuple[float, float, int]:
    """(requests/s, p99 ms, requests) from one wrk run."""
    out = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(script), url, "--", f"{url}-{connections}"],
        capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx.group(1)} requests failed")
    return rate, p99, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "envelope.lua"
        script.write_text(LUA)
        bare_port, cw_port = free_port(), free_port()
        (Path(tmp) / "bare.py").write_text(BARE)
        start(stack, [sys.executable, str(Path(tmp) / "bare.py"), str(bare_port)])
        start(stack, [sys.executable, "-m", "cachewatch", "serve", "--listen-address",
                      "127.0.0.1", "--port", str(cw_port), "--disable-collector", "redis",
                      "--log-level", "warning"])
        bare = f"http://127.0.0.1:{bare_port}/webhooks/registry"
        cachewatch = f"http://127.0.0.1:{cw_port}/webhooks/registry"
        wait_http(bare)
        wait_http(f"http://127.0.0.1:{cw_port}/healthz")
        print(f"one event per envelope, {args.seconds}s per run, wrk on the same 2 cores")
        print(f"{'senders':<9}{'receiver':<28}{'events/s':>10}{'p99 ms':>9}")
        sent = 0
        for connections in (1, 16):
            ceiling = wrk(bare, script, connections, args.seconds)
            ours = wrk(cachewatch, script, connections, args.seconds)
            sent += ours[2]
            print(f"{connections:<9}{'bare uvicorn (ceiling)':<28}{ceiling[0]:>10.0f}"
                  f"{ceiling[1]:>9.2f}")
            print(f"{'':<9}{'cachewatch /webhooks/registry':<28}{ours[0]:>10.0f}{ours[1]:>9.2f}")
            print(f"{'':<9}{'ratio (goal >= 0.5)':<28}{ours[0] / ceiling[0]:>10.2f}")
        counted = httpx.get(f"http://127.0.0.1:{cw_port}/metrics").text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in counted.splitlines()
                    if line.startswith("cachewatch_registry_blob_pulls_total{"))
        print(f"events sent to cachewatch: {sent}, blob pulls it counted: {total:.0f}")


if __name__ == "__main__":
    main()
