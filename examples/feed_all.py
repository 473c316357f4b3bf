"""Feed every cachewatch source for a few minutes, so the status page and /metrics fill up.

What it sends, to an exporter started with `make run` (or `cachewatch serve`):

* **Redis and application caches**: a two-level cache (in-process L1 over Redis L2, as in
  ``two_level_app.py``) looked up at a steady pace and pushed to ``/api/v1/caches``; with no
  Redis reachable, an in-process cache alone;
* **Docker builds**: a BuildKit build of ``demo/web`` every ``--build-every`` (the first cold,
  then most steps cached and ``COPY src/ ./src/`` busting the rest) to ``/api/v1/builds``;
* **registry pulls**: a pull of ``demo/web`` (manifest and one layer) every ``--pull-every`` to
  ``/webhooks/registry``, as a Distribution registry notifies;
* **CI caches**: a CI job's cache restores (two hits, one miss) every ``--job-every`` to
  ``/api/v1/ci/caches``.

    pip install '.[examples]'         # cachetools and redis-py
    make run &                        # the exporter, reading redis://127.0.0.1:6379
    python examples/feed_all.py       # 3 minutes; --duration 10m for longer

Every write carries a fresh id, so running it again adds to the counts, never repeats them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

try:
    import cachetools
    import httpx
    import redis
except ImportError as missing:
    raise SystemExit(f"{missing.name} is not installed: pip install 'cachewatch[examples]' "
                     "(or pip install '.[examples]' in a checkout)") from None

from cachewatch.instrument import Caches, instrument_cachetools
from two_level_app import Catalog, zipf_keys

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")

# Dockerfile steps of demo/web: (instruction, seconds a run of it takes).
STEPS = [("WORKDIR /app", 0.0), ("COPY requirements.txt ./", 0.0),
         ("RUN pip install -r requirements.txt", 21.4), ("COPY src/ ./src/", 0.1),
         ("RUN python -m compileall src", 1.2)]
# Builds after the first take the steps before this one from cache.
BUSTED_FROM = 3


def duration(text: str) -> float:
    """``3m``, ``90s``, ``1m30s``, ``1h`` or plain seconds -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 3m or 1m30s")
    hours, minutes, secs = (float(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + secs
    if total <= 0:
        raise argparse.ArgumentTypeError("the duration must be above zero")
    return total


def build_log(cold: bool) -> str:
    """A BuildKit plain-progress log of one build of demo/web (the format `docker build
    --progress=plain` prints): every step run when ``cold``, else those from ``COPY src/``."""
    lines = ["#0 building with \"default\" instance using docker driver", "",
             "#1 [internal] load build definition from Dockerfile",
             "#1 transferring dockerfile: 231B done", "#1 DONE 0.0s", "",
             "#2 [internal] load metadata for docker.io/library/python:3.12-slim",
             "#2 DONE 0.4s", "",
             "#3 [1/6] FROM docker.io/library/python:3.12-slim", "#3 DONE 0.0s", ""]
    for index, (instruction, seconds) in enumerate(STEPS):
        number = index + 4
        lines.append(f"#{number} [{index + 2}/6] {instruction}")
        if not cold and index < BUSTED_FROM:
            lines.append(f"#{number} CACHED")
        else:
            lines.append(f"#{number} DONE {seconds:.1f}s")
        lines.append("")
    lines += ["#10 exporting to image", "#10 exporting layers 0.3s done",
              "#10 naming to docker.io/demo/web:latest done", "#10 DONE 0.3s", ""]
    return "\n".join(lines)


def pull_events(registry_host: str) -> dict[str, object]:
    """A Distribution notification envelope for one pull of demo/web: its manifest and one
    layer, served with GET, each event with a fresh id."""
    def event(media_type: str, size: int, digest: str) -> dict[str, object]:
        return {"id": str(uuid.uuid4()), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "action": "pull",
                "target": {"mediaType": media_type, "size": size, "digest": digest,
                           "repository": "demo/web", "tag": "latest"},
                "request": {"method": "GET", "host": registry_host, "useragent": "docker/27"}}

    return {"events": [
        event("application/vnd.docker.distribution.manifest.v2+json", 1573, "sha256:" + "1" * 64),
        event("application/vnd.docker.image.rootfs.diff.tar.gzip", 3_612_345,
              "sha256:" + "2" * 64)]}


def job_report() -> dict[str, object]:
    """One CI job's caches: pip and pre-commit restored on their primary key, mypy missed."""
    return {"id": str(uuid.uuid4()), "ci_caches": [
        {"ci": "github", "cache": "pip-Linux", "result": "hit", "bytes": 48_000_000},
        {"ci": "github", "cache": "pre-commit-Linux", "result": "hit", "bytes": 21_000_000},
        {"ci": "github", "cache": "mypy-Linux", "result": "miss"}],
        "ci_cache_saves": [{"ci": "github", "cache": "mypy-Linux", "bytes": 9_000_000}]}


@dataclass
class Sent:
    """What was sent and acknowledged, printed at the end to compare with the page."""

    lookups: int = 0
    builds: int = 0
    pulls: int = 0
    ci_jobs: int = 0
    refused: dict[str, int] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", default="http://127.0.0.1:10150",
                        help="cachewatch's URL (default %(default)s)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379",
                        help="the Redis L2 (the one `make run` reads; default %(default)s)")
    parser.add_argument("--duration", type=duration, default=duration("3m"),
                        help="how long to feed: 90s, 3m, 1m30s (default 3m)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="cache lookups a second (default %(default)s)")
    parser.add_argument("--build-every", type=duration, default=duration("20s"),
                        help="a build of demo/web this often (default 20s)")
    parser.add_argument("--pull-every", type=duration, default=duration("10s"),
                        help="a registry pull of demo/web this often (default 10s)")
    parser.add_argument("--job-every", type=duration, default=duration("30s"),
                        help="a CI job's cache restores this often (default 30s)")
    parser.add_argument("--token", default=None,
                        help="the receivers' bearer token, if cachewatch has one set")
    parser.add_argument("--seed", type=int, default=7,
                        help="the lookups' random seed (default %(default)s)")
    args = parser.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    """Feed until ``args.duration`` has passed, then print what was sent."""
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    http = httpx.Client(base_url=args.exporter, headers=headers, timeout=5)
    try:
        http.get("/healthz").raise_for_status()
    except httpx.HTTPError as exc:
        raise SystemExit(f"feed: no cachewatch at {args.exporter} ({exc}): start it with "
                         "`make run` (or `cachewatch serve`), or pass --exporter") from None
    sent = Sent()
    caches = Caches()
    lookup = _cache(args, caches)
    pusher = caches.push_to(args.exporter, interval=1.0, token=args.token)
    rnd = random.Random(args.seed)
    keys, weights = zipf_keys(args.seed, 2_000)
    run_id = uuid.uuid4().hex[:8]

    def post(what: str, path: str, **kwargs: object) -> bool:
        try:
            answer = http.post(path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            sent.refused[what] = sent.refused.get(what, 0) + 1
            print(f"feed: {what} not sent: {exc}", file=sys.stderr)
            return False
        if answer.status_code >= 300:
            sent.refused[what] = sent.refused.get(what, 0) + 1
            print(f"feed: {what} refused: {answer.status_code} {answer.text.strip()[:200]}",
                  file=sys.stderr)
        return answer.status_code < 300

    def build() -> None:
        log = build_log(cold=sent.builds == 0)
        if post("build", "/api/v1/builds", content=log.encode(),
                params={"image": "demo/web", "id": f"feed-{run_id}-{sent.builds}"},
                headers={"Content-Type": "text/plain"}):
            sent.builds += 1

    def pull() -> None:
        if post("pull", "/webhooks/registry", params={"registry": "demo"},
                json=pull_events("registry.demo:5000")):
            sent.pulls += 1

    def job() -> None:
        if post("CI job", "/api/v1/ci/caches", json=job_report()):
            sent.ci_jobs += 1

    every: list[tuple[float, Callable[[], None]]] = [
        (args.build_every, build), (args.pull_every, pull), (args.job_every, job)]
    started = time.monotonic()
    due = [started] * len(every)
    next_note = started + 30
    _say_what_to_look_at(args)
    while (now := time.monotonic()) - started < args.duration:
        for index, (interval, send) in enumerate(every):
            if now >= due[index]:
                send()
                due[index] = now + interval
        for key in rnd.choices(keys, weights=weights, k=max(1, int(args.rate / 10))):
            lookup(key)
            sent.lookups += 1
        if now >= next_note:
            left = args.duration - (now - started)
            print(f"feed: {sent.lookups} lookups, {sent.builds} builds, {sent.pulls} pulls, "
                  f"{sent.ci_jobs} CI jobs sent; {left:.0f}s to go", file=sys.stderr)
            next_note = now + 30
        time.sleep(0.1)
    pusher.stop(flush=True)
    print(json.dumps({"lookups": sent.lookups, "builds": sent.builds, "pulls": sent.pulls,
                      "ci_jobs": sent.ci_jobs, "cache_pushes": pusher.pushed,
                      "failed_cache_pushes": pusher.failed, "refused": sent.refused}))


def _cache(args: argparse.Namespace, caches: Caches) -> Callable[[str], object]:
    """The two-level catalog over Redis, or an in-process cache alone when Redis is away."""
    store = redis.Redis.from_url(args.redis, socket_timeout=2, socket_connect_timeout=2)
    try:
        store.ping()
    except redis.RedisError as exc:
        print(f"feed: no Redis at {args.redis} ({exc}): feeding an in-process cache only; "
              "start redis-server (or pass --redis) for the Redis layer and the two-level chain",
              file=sys.stderr)
        alone = cachetools.LRUCache(maxsize=200)
        instrument_cachetools(alone, "catalog", into=caches)

        def lookup(key: str) -> object:
            try:
                return alone[key]
            except KeyError:
                alone[key] = key
                return key

        return lookup
    return Catalog(store, caches, l1_size=200).lookup


def _say_what_to_look_at(args: argparse.Namespace) -> None:
    length = f"{args.duration:g}s" if args.duration < 60 else f"{args.duration / 60:g} min"
    print(f"feed: feeding {args.exporter} for {length}. Look at:\n"
          f"  {args.exporter}/   the status page: tiles per layer, 'Below goal', the catalog "
          "chain's effective hit rate, demo/web's last build and its cache buster\n"
          f"  {args.exporter}/metrics   e.g. cachewatch_cache_lookups_total{{layer=\"app\"}}, "
          "cachewatch_docker_builds_total, cachewatch_registry_image_pulls_total", file=sys.stderr)


if __name__ == "__main__":
    main()
