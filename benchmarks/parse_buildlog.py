"""Build log parsing speed and memory, with `wc -l` on the same file as the floor to compare.

Makes a large log from real captured build lines (tests/fixtures/buildlogs: BuildKit plain and
legacy output of real builds; with --source real, the corpus of public CI logs in
tests/fixtures/buildlogs/real, whose lines carry CI timestamps and tool prefixes), then times,
on that same file, in the same run, ``--rounds`` interleaved rounds of:
  * `wc -l`                                   the floor: reading and counting lines
  * the build-log parser                      what ingest-build runs on its input, in this
                                              process: 1 MiB pieces of whole lines
                                              (``complete_lines``) into a ``BuildSplitter``,
                                              every byte teed to /dev/null, then ``finish()``
  * `cachewatch ingest-build --url ''`        the same plus the interpreter's start-up
and reports the median of each (lines/s, MB/s) and the peak RSS of the ingest process. The last
line is the overhead table row (the parser's median speed over wc's). ``--profile`` prints the
parser's top frames under cProfile. With --docker-host it also times real `docker build
--no-cache` runs piped through `cat` and through `ingest-build`, which is the overhead a user
sees on a piped build.

    python benchmarks/parse_buildlog.py [--size-mb 256] [--rounds 5] [--source fixtures|real]
                                        [--profile] [--docker-host unix:///path/docker.sock]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cachewatch.sources.docker.buildlog import BuildSplitter, complete_lines

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "buildlogs"
CW = [sys.executable, "-m", "cachewatch"]


def make_log(path: Path, size_mb: int, source: str = "fixtures") -> int:
    """Real captured lines, vertex numbers shifted per copy, until the file is ``size_mb``."""
    # Step output dominates real large logs; buildkit-verbose.log is a real build whose RUN steps
    # print 2,000 lines, the others are real builds with short output.
    logs = FIXTURES / "real" if source == "real" else FIXTURES
    block = [line for p in sorted(logs.glob("*.log")) for line in p.read_text().splitlines()]
    vertex = re.compile(r"^#(\d+)" if source == "fixtures" else r"#(\d+)(?= )")
    target = size_mb * 1024 * 1024
    written = copies = 0
    with path.open("w") as out:
        while written < target:
            shift = copies * 20
            chunk = "\n".join(
                vertex.sub(lambda m, by=shift: f"#{int(m.group(1)) + by}", line, count=1)
                for line in block) + "\n"
            out.write(chunk)
            written += len(chunk)
            copies += 1
    return written


def timed(argv: list[str], stdin: Path, stdout: str = os.devnull) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with stdin.open("rb") as source, open(stdout, "wb") as sink:
        started = time.perf_counter()
        subprocess.run(argv, stdin=source, stdout=sink, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def rss_of(argv: list[str], stdin: Path) -> float:
    """Peak RSS (MB) of ``argv`` alone, measured by GNU time if present, else by rusage."""
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    if gnu_time:
        with stdin.open("rb") as source:
            result = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdin=source,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    check=True)
        return int(result.stderr.strip().splitlines()[-1]) / 1024
    return timed(argv, stdin)[1]


def piped_builds(docker_host: str, runs: int) -> tuple[list[float], list[float]]:
    busybox = shutil.which("busybox")
    docker = "/usr/bin/docker"
    if not busybox or not Path(docker).exists():
        raise SystemExit("piped build overhead needs busybox-static and docker.io's client")
    env = {**os.environ, "DOCKER_HOST": docker_host, "DOCKER_BUILDKIT": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        shutil.copy(busybox, ctx / "busybox")
        (ctx / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox","sh","-c","for i in $(seq 1 2000); do echo line $i; done"]\n')
        build = f"{docker} build --no-cache --network=host --progress=plain -t cw-bench {ctx} 2>&1"
        ingest = " ".join(CW) + " ingest-build --image bench --url ''"
        plain, through = [], []
        for _ in range(runs):
            for command, sink in ((f"{build} | cat", plain), (f"{build} | {ingest}", through)):
                started = time.perf_counter()
                subprocess.run(["bash", "-o", "pipefail", "-c", command + " > /dev/null"],
                               env=env, check=True, stderr=subprocess.DEVNULL)
                sink.append(time.perf_counter() - started)
    return plain, through


def parse_file(log: Path) -> int:
    """The parser alone, as ``ingest-build`` drives it: every byte teed to a sink, the log
    in pieces of whole lines into a splitter, then the summaries. Returns the number of builds."""
    with log.open("rb") as source, open(os.devnull, "wb") as sink:
        splitter = BuildSplitter()
        for piece in complete_lines(source, tee=sink.write):
            splitter.feed_data(piece)
    return len(splitter.finish("bench"))


def in_process(log: Path) -> float:
    started = time.perf_counter()
    parse_file(log)
    return time.perf_counter() - started


def profile(log: Path, top: int = 12) -> None:
    """The parser's top frames by own time (cProfile), to see where a change should go."""
    profiler = cProfile.Profile()
    profiler.runcall(parse_file, log)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    print(out.getvalue().rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--source", choices=("fixtures", "real"), default="fixtures",
                        help="lines of tests/fixtures/buildlogs, or of its real/ corpus")
    parser.add_argument("--docker-host", help="also measure piped real builds on this engine")
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--profile", action="store_true", help="print the parser's top frames")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "build.log"
        size = make_log(log, args.size_mb, args.source)
        lines = int(subprocess.run(["wc", "-l", str(log)], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
        ingest_argv = [*CW, "ingest-build", "--image", "bench", "--url", ""]
        wc, parser, ingest = [], [], []
        for _ in range(args.rounds):  # interleaved: a busy moment hits every contender
            wc.append(timed(["wc", "-l"], log)[0])
            parser.append(in_process(log))
            ingest.append(timed(ingest_argv, log)[0])
        rss = rss_of(ingest_argv, log)
        if args.profile:
            profile(log)
    mb = size / 1e6
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.machine()}, "
          f"Python {platform.python_version()}; date: {datetime.date.today().isoformat()}")
    print(f"log: {mb:.0f} MB, {lines:,} lines of real captured build output ({args.source});"
          f" median of {args.rounds} interleaved rounds")
    print(f"{'':<34}{'seconds':>9}{'lines/s':>14}{'MB/s':>9}")
    speeds = {}
    for name, runs in (("wc -l (floor)", wc), ("build-log parser (in process)", parser),
                       ("cachewatch ingest-build", ingest)):
        seconds = statistics.median(runs)
        speeds[name] = mb / seconds
        print(f"{name:<34}{seconds:>9.3f}{lines / seconds:>14,.0f}{mb / seconds:>9.1f}")
    floor, parsed = speeds["wc -l (floor)"], speeds["build-log parser (in process)"]
    print(f"ingest-build (with start-up) / wc -l: {speeds['cachewatch ingest-build'] / floor:.3f}"
          f"x; ingest-build peak RSS: {rss:.1f} MB (goal < 50)")
    print(f"row: build-log parser / wc -l = {parsed / floor:.3f}x (goal >= 0.1x) "
          f"[{parsed:.0f} MB/s vs {floor:.0f} MB/s]")

    if args.docker_host:
        plain, through = piped_builds(args.docker_host, args.builds)
        a, b = statistics.median(plain), statistics.median(through)
        print(f"piped real build, median of {args.builds}: `| cat` {a:.2f}s, "
              f"`| cachewatch ingest-build` {b:.2f}s, overhead {b - a:+.2f}s ({b / a - 1:+.0%})")


if __name__ == "__main__":
    main()
