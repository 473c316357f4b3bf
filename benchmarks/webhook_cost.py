"""Where a registry webhook's time goes: each part of a request timed on its own, in process.

The throughput benchmark (``webhook_throughput.py``) says how far the receiver is from a bare
uvicorn app; this says which part of the request costs what over that app. Every part runs the
real code on the event loop, driven through the ASGI interface with no network, over envelopes
of one event with unique ids (so de-duplication does real work), and is timed as the median of
interleaved rounds:

* ``bare app``: an ASGI app that only reads the body and answers (the ceiling's own work);
* ``stack``: the Guard (web config, basic auth, body budget) and the fast-path dispatch, with the
  bare app as the endpoint: what every receiver pays before its own code runs;
* ``auth + body read``: ``RawReceiver.body`` (method, loopback or token, budget, the body);
* ``JSON decode``: the envelope into Python objects;
* ``validation``: one event checked and turned into its counter increments and id;
* ``de-dup + count + state write`` per store: ``Ledger.record`` of that event (claim the id,
  add the counts, commit), for ``memory://``, SQLite and, given a URL, Redis; and the same for
  16 requests that reach the store in one turn of the loop, as under 16 senders (all 16
  together: SQLite commits them in one transaction, Redis pipelines them);
* ``answer``: the JSON answer sent;
* ``whole request``: the real endpoint through the whole stack, per store.

    python benchmarks/webhook_cost.py [--redis-url redis://127.0.0.1:6379/0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

EVENT = ('{"id":"%s","timestamp":"2026-11-24T12:00:00Z","action":"pull","target":{'
         '"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1024,"length":1024,'
         '"digest":"sha256:0000","repository":"team/app%d","url":"http://r/v2/x"},"request":{'
         '"id":"r","addr":"127.0.0.1:1","host":"r:5000","method":"GET","useragent":"bench"},'
         '"actor":{},"source":{"addr":"r:5000","instanceID":"i"}}')
PATH = "/webhooks/registry"
GROUP = 16  # requests whose events reach the store in one turn of the loop (16 senders)
MEDIA = b"application/vnd.docker.distribution.events.v2+json"


def envelope(event_id: str, events: int = 1) -> bytes:
    """A Distribution envelope of ``events`` events, ids ``<event_id>.<n>``."""
    events_ = ",".join(EVENT % (f"{event_id}.{n}", n % 50) for n in range(events))
    return ('{"events":[' + events_ + "]}").encode()


class Receiver:
    """One cachewatch app in process, on one state store, with what its parts need."""

    def __init__(self, state_url: str) -> None:
        os.environ["CACHEWATCH_STATE__URL"] = state_url
        from cachewatch.collectors.enabled import build
        from cachewatch.config import Settings
        from cachewatch.http import webconfig
        from cachewatch.http.guard import LiveWebConfig
        from cachewatch.http.server import create_app
        from cachewatch.runtime import Runtime
        from cachewatch.state import open_state

        settings = Settings()
        self.runtime = Runtime(None, open_state(settings.state, 1),
                               body_budget=settings.web.max_inflight_body_bytes)
        self.collector = next(c for c in build(settings, self.runtime) if c.name == "registry")
        self.app = create_app([self.collector], self.runtime,
                              web=LiveWebConfig(webconfig.load(None)))
        self.endpoint = self.collector.fast_routes()[PATH]
        self.max_events = settings.registry.max_events

    def close(self) -> None:
        self.runtime.close()


def request(body: bytes) -> tuple[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]]]:
    """An ASGI scope and ``receive`` for one loopback POST of ``body``."""
    scope = {"type": "http", "method": "POST", "path": PATH, "query_string": b"",
             "client": ("127.0.0.1", 40000), "headers": [
                 (b"host", b"cachewatch"), (b"content-type", MEDIA),
                 (b"content-length", b"%d" % len(body))]}
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    return scope, receive


async def discard(message: Any) -> None:
    """``send`` for answers nobody reads."""


async def bare(scope: Any, receive: Any, send: Any) -> None:
    """The ceiling's app: read the body, answer a fixed JSON body."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"accepted":1}'})


# A part: ``prepare(n)`` makes request number n's input (untimed), ``run(input)`` is timed.
Part = tuple[Callable[[int], Any], Callable[[Any], Awaitable[Any]]]


def parts(receivers: dict[str, Receiver], tag: str) -> dict[str, Part]:
    """Each part of a request, its inputs unique per request number and ``tag``."""
    from cachewatch.receiving import send_encoded
    from cachewatch.sources.registry.envelope import read_envelope
    from cachewatch.sources.registry.events import answer as encoded

    memory = receivers["memory"]
    fast = memory.app.app  # the Guard's app: the fast-path dispatch
    event = await_now(read_envelope(envelope("v"), 1))["events"][0]

    def asgi(prefix: str) -> Callable[[int], Any]:
        return lambda n: request(envelope(f"{tag}{prefix}{n}"))

    def body(n: int) -> bytes:
        return envelope(f"{tag}d{n}")

    def event_of(prefix: str) -> Callable[[int], dict[str, Any]]:
        return lambda n: {**event, "id": f"{tag}{prefix}{n}"}

    async def stack(request_: Any) -> None:
        fast.paths[PATH] = bare
        try:
            await memory.app(*request_, discard)
        finally:
            fast.paths[PATH] = memory.endpoint

    async def receive_body(request_: Any) -> None:
        scope, receive = request_
        await memory.endpoint.receiver.body(scope, receive, discard, dict(scope["headers"]))

    async def validate(event_: dict[str, Any]) -> None:
        memory.collector.distribution_change(event_, None)

    async def answer(_: Any) -> None:
        await send_encoded(discard, 200, encoded(200, {"accepted": 1, "duplicates": 0,
                                                        "rejected": []}))

    out: dict[str, Part] = {
        "bare app": (asgi("b"), lambda r: bare(*r, discard)),
        "stack (guard, dispatch)": (asgi("s"), stack),
        "auth + body read": (asgi("r"), receive_body),
        "JSON decode": (body, lambda raw: read_envelope(raw, memory.max_events)),
        "validation": (event_of("v"), validate),
        "answer": (lambda n: None, answer),
    }
    for name, receiver in receivers.items():
        collector = receiver.collector

        async def record(change: Any, ledger: Any = collector.ledger) -> None:
            await ledger.record([change])

        out[f"de-dup + count + write, {name}"] = (
            lambda n, c=collector, p=f"w{name}": c.distribution_change(event_of(p)(n), None),
            record)

        async def together(changes: list[Any], ledger: Any = collector.ledger) -> None:
            await asyncio.gather(*(ledger.record([change]) for change in changes))

        out[f"the same, {GROUP} requests at once, {name}"] = (
            lambda n, c=collector, p=f"g{name}": [
                c.distribution_change(event_of(p)(GROUP * n + k), None) for k in range(GROUP)],
            together)
    for name, receiver in receivers.items():
        out[f"whole request, {name}"] = (
            asgi(f"q{name}"), lambda r, app=receiver.app: app(*r, discard))
    return out


def await_now(coroutine: Awaitable[Any]) -> Any:
    """Run a coroutine that never suspends to its end, outside any loop."""
    try:
        coroutine.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


async def measure(all_parts: dict[str, Part], rounds: int, calls: int) -> dict[str, float]:
    """Microseconds per call of each part: the median of ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in all_parts}
    for round_ in range(rounds + 1):  # the first round warms up and is not kept
        for name, (prepare, run) in all_parts.items():
            inputs = [prepare(n) for n in range(round_ * calls, (round_ + 1) * calls)]
            started = time.perf_counter()
            for given in inputs:
                await run(given)
            if round_:
                times[name].append((time.perf_counter() - started) / calls * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def breakdown(redis_url: str | None, rounds: int = 5, calls: int = 2000) -> dict[str, float]:
    """The parts' costs in microseconds, measured on fresh stores in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{Path(folder) / 'cost.db'}"}
        if redis_url:
            urls["redis"] = redis_url
        return asyncio.run(_breakdown(urls, rounds, calls))


async def _breakdown(urls: dict[str, str], rounds: int, calls: int) -> dict[str, float]:
    receivers = {name: Receiver(url) for name, url in urls.items()}
    try:
        return await measure(parts(receivers, f"{time.time_ns()}-"), rounds, calls)
    finally:
        for receiver in receivers.values():
            receiver.close()


def report(costs: dict[str, float]) -> None:
    """The costs as a table, each over the bare app."""
    floor = costs["bare app"]
    print(f"{'part of one webhook (1 event)':<40}{'us':>8}")
    for name, micros in costs.items():
        over = "" if name == "bare app" else f"   ({micros / floor:.1f}x the bare app)"
        print(f"{name:<40}{micros:>8.1f}{over}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="a Redis to measure the redis state store on")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    report(breakdown(args.redis_url, args.rounds))


if __name__ == "__main__":
    main()
