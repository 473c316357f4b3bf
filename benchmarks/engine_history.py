"""What the engine build-history collector adds to a scrape, with 200 images built many times.

The history is read in the events thread, once per new image id; a scrape only turns the counts
into families. This times that scrape part (and, for scale, one new image's history analysis)
against the issue's budget: under 5 ms a scrape with 200 images.

    python benchmarks/engine_history.py [--images 200] [--builds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cachewatch.sources.docker.history import BuildHistory


def history(image: int, build: int) -> list[dict]:
    """A 12-step Dockerfile whose last 4 steps are rebuilt on each build (newest first)."""
    steps = [{"Created": 1000 + (build if n >= 8 else 0),
              "CreatedBy": f"RUN step-{image}-{n} # buildkit"} for n in range(12)]
    return list(reversed(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--builds", type=int, default=20)
    args = parser.parse_args()
    histories = {f"sha256:{i}-{b}": history(i, b)
                 for i in range(args.images) for b in range(args.builds)}
    collector = BuildHistory(histories.__getitem__, list, max_images=args.images,
                             clock=lambda: 0.0)
    started = time.perf_counter()
    for b in range(args.builds):
        for i in range(args.images):
            collector.on_tag(f"sha256:{i}-{b}", f"team/app-{i}:latest")
    per_build = (time.perf_counter() - started) / (args.images * args.builds)
    steady, after_build = [], []
    for n in range(200):
        collector.on_tag(f"sha256:{n % args.images}-0", f"team/app-{n % args.images}:latest")
        for times in (after_build, steady):  # the first scrape after a build renders anew
            started = time.perf_counter()
            list(collector.families())
            times.append(time.perf_counter() - started)
    print(f"images={args.images} builds/image={args.builds}")
    print(f"new image analysed (events thread): {per_build * 1e3:.3f} ms per build")
    for name, times in (("scrape, no build since the last", steady),
                        ("first scrape after a build", after_build)):
        times.sort()
        print(f"{name}: p50 {statistics.median(times) * 1e3:.3f} ms, "
              f"p99 {times[int(len(times) * 0.99) - 1] * 1e3:.3f} ms (budget 5 ms)")

if __name__ == "__main__":
    main()
