"""What following BuildKit's build history costs, on a real buildkitd (v0.11.6), in one run:

  * CPU per history record: its logs blob read over the socket, decoded and summarised (the
    log parser's rules), as the collector does for each build (goal: 2 ms or less);
  * backfill: the collector started on a daemon holding its whole default retention (50
    builds), until every build is counted into a SQLite state store: wall-clock and CPU;
  * the scrape with the history of 50 images, side by side with the scrape without the collector
    and with the same 50 images' builds ingested as logs (the same families, from the builds
    collector): the collector's own cost is the difference with the latter (goal: within
    0.2 ms), the difference with the former is the 50 images' samples themselves.

Needs root, runc and Go (or the daemon already built): the daemon comes from the BuildKit source
beside the repository (``../shared/buildkit/build.sh``, built once and cached).

    python benchmarks/buildkit_history.py [--images 50] [--scrapes 500]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cachewatch.config import load_settings
from cachewatch.exposition import Exposition
from cachewatch.runtime import Runtime
from cachewatch.sources import build
from cachewatch.sources.docker.buildkit.client import HistoryClient
from cachewatch.sources.docker.buildkit.collector import BuildkitCollector
from cachewatch.sources.docker.buildkit.record import MAX_LOGS_BYTES, summary
from cachewatch.sources.docker.buildkit.settings import BuildkitSettings, BuildkitTarget
from cachewatch.state import MemoryStore, State
from cachewatch.state.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT.parent / "shared" / "buildkit" / "build.sh"
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
DOCKERFILE = ("FROM scratch\nCOPY busybox /bin/busybox\nCOPY app.txt /app.txt\n"
              'RUN ["/bin/busybox","sh","-c","/bin/busybox cat /app.txt > /copy.txt"]\n'
              'RUN ["/bin/busybox","sh","-c","echo three > /three.txt"]\n')


def start_daemon(folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """buildkitd on a unix socket in ``folder``; (process, address, bin folder)."""
    binaries = Path(subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True,
                                   check=True).stdout.strip())
    address = f"unix://{folder / 's'}"
    proc = subprocess.Popen(
        [str(binaries / "buildkitd"), "--root", str(folder / "root"), "--addr", address,
         "--oci-worker=true", "--containerd-worker=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = [str(binaries / "buildctl"), "--addr", address]
    for _ in range(300):
        if subprocess.run([*ctl, "debug", "workers"], capture_output=True).returncode == 0:
            return proc, address, binaries
        time.sleep(0.1)
    raise SystemExit("buildkitd did not start")


def make_builds(folder: Path, address: str, binaries: Path, images: int) -> None:
    """One cold build per image, each from a context of its own."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    for n in range(images):
        context = folder / f"ctx{n}"
        context.mkdir()
        (context / "busybox").write_bytes(busybox + uuid.uuid4().bytes)
        (context / "busybox").chmod(0o755)
        (context / "app.txt").write_text(f"{n}\n")
        (context / "Dockerfile").write_text(DOCKERFILE)
        subprocess.run([str(binaries / "buildctl"), "--addr", address, "build", "--frontend",
                        "dockerfile.v0", "--local", f"context={context}", "--local",
                        f"dockerfile={context}", "--output",
                        f"type=image,name=bench.test/app-{n}:1"], capture_output=True,
                       check=True)


def cpu_per_record(address: str) -> tuple[float, int]:
    """CPU milliseconds per record (best of 3 passes over the backlog), and the records."""
    client = HistoryClient(BuildkitTarget(address=address), 30)
    best = float("inf")
    records = client.backlog()
    for _ in range(3):
        started = time.process_time()
        for record in records:
            summary(record, client.blob(record.logs.digest, MAX_LOGS_BYTES))
        best = min(best, time.process_time() - started)
    client.close()
    return best / len(records) * 1e3, len(records)


def backfill(address: str, state_file: Path, expected: int) -> tuple[float, float, Runtime,
                                                                     BuildkitCollector]:
    """(wall seconds, CPU seconds) from the collector's start until ``expected`` builds are
    counted into SQLite; the runtime and collector, left serving for the scrape benchmark."""
    runtime = Runtime(state=State(SqliteStore(state_file), "bench"))
    collector = BuildkitCollector(BuildkitSettings(enabled=True, targets=[f"bk={address}"]),
                                  runtime)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    wall, cpu = time.perf_counter(), time.process_time()
    loop.call_soon_threadsafe(collector.start)
    while sum(v for k, v in collector.counts.ledger.items()
              if k[0] == "cachewatch_docker_builds_total") < expected:
        time.sleep(0.005)
    return time.perf_counter() - wall, time.process_time() - cpu, runtime, collector


def with_logs(images: int) -> Exposition:
    """The default collectors with the same builds ingested as logs (builds collector)."""
    runtime = Runtime(state=State(MemoryStore(), "bench"))
    collectors = build(load_settings(**{"redis.enabled": False}), runtime)
    builds = next(c for c in collectors if c.name == "builds")
    from cachewatch.sources.docker.submission import SubmittedSummary

    async def ingest() -> None:
        for n in range(images):
            await builds.record(SubmittedSummary(  # type: ignore[attr-defined]
                status="success", duration_seconds=0.5, lookups=4, hits=0, misses=4,
                executed_seconds=0.3), f"bench.test/app-{n}", "")

    asyncio.run(ingest())
    return Exposition(collectors)


def scrape_ms(exposition: Exposition, scrapes: int) -> float:
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        exposition.render(OPENMETRICS)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cw-bkb."))
    proc, address, binaries = start_daemon(folder)
    collector: BuildkitCollector | None = None
    try:
        print(f"building {args.images} images ...", file=sys.stderr)
        make_builds(folder, address, binaries, args.images)
        per_record, records = cpu_per_record(address)
        print("backfill ...", file=sys.stderr)
        wall, cpu, _, collector = backfill(address, folder / "state.db", args.images)
        print("scrapes ...", file=sys.stderr)
        baseline = Exposition(build(load_settings(**{"redis.enabled": False}),
                                    Runtime(state=State(MemoryStore(), "bench"))))
        logs = with_logs(args.images)
        following = Exposition([*baseline.collectors, collector])
        for exposition in (baseline, logs, following):  # warm the caches once
            scrape_ms(exposition, 20)
        rounds = [(scrape_ms(baseline, args.scrapes), scrape_ms(logs, args.scrapes),
                   scrape_ms(following, args.scrapes)) for _ in range(3)]
        none, logged, followed = (statistics.median(column) for column in zip(*rounds,
                                                                              strict=True))
    finally:
        if collector is not None:
            collector.close()
        proc.terminate()
        proc.wait()
        subprocess.run(["umount", "-R", str(folder / "root")], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"records={records} (one cold 4-step build per image, FROM scratch)")
    print(f"CPU per history record (logs blob read + summary): {per_record:.2f} ms (goal <= 2)")
    print(f"backfill of {args.images} records into SQLite: {wall * 1e3:.0f} ms wall, "
          f"{cpu * 1e3:.0f} ms CPU ({cpu / args.images * 1e3:.2f} ms CPU per record)")
    print(f"scrape p50, no buildkit collector, no builds: {none:.3f} ms")
    print(f"scrape p50, the same {args.images} images ingested as logs: {logged:.3f} ms")
    print(f"scrape p50, {args.images} images from BuildKit's history: {followed:.3f} ms "
          f"({followed - logged:+.3f} ms against logs, goal within 0.2; "
          f"{followed - none:+.3f} ms against no builds at all)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
