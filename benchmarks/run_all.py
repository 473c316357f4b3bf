"""`make bench`: run every benchmark, then print the overhead table from what they measured.

Each benchmark prints its own report and, for each figure of the table, one line

    row: <figure> = <value> (goal <goal>) [<detail>]

with the figure's peer and ceiling measured in the same run (the detail says which). This runs
the benchmarks one after another with this interpreter, passes their output through, collects
those lines, and ends with the table in Markdown, headed by the machine (cores, CPU model), the
load average and the date, so the README table can be updated from it as it stands.

A benchmark that fails (a missing peer such as prometheus-redis-exporter or wrk) is named under
the table and the exit status is 1; the rows of the others are still printed.

    python benchmarks/run_all.py [--only webhook_throughput.py ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The table's figures come from the first three; the rest print reports of their own.
BENCHMARKS = ("scrape_redis.py", "parse_buildlog.py", "webhook_throughput.py",
              "scrape_redis_cluster.py", "instrument_overhead.py", "receiver_flood.py")
ROW = re.compile(r"^row: (?P<figure>.+?) = (?P<value>[^=(]+?) \(goal (?P<goal>[^)]*)\)"
                 r"(?: \[(?P<detail>.*)\])?\s*$")


def run(script: str) -> tuple[list[dict[str, str]], int]:
    """The rows ``script`` printed (its output passed through as it comes) and its status."""
    rows = []
    print(f"\n=== {script} ===", flush=True)
    with subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            match = ROW.match(line)
            if match:
                rows.append({key: value or "" for key, value in match.groupdict().items()})
    return rows, proc.returncode


def machine() -> str:
    """Cores, CPU model, load average and date: what the figures were measured on."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
            f"load average {load} at the start, {when}")


def table(rows: list[dict[str, str]]) -> str:
    """The rows as a Markdown table; ``|`` in a cell is escaped."""
    lines = ["| figure | measured | goal | peer and ceiling, same run |", "|---|---|---|---|"]
    for row in rows:
        cells = (row["figure"], row["value"], row["goal"], row["detail"])
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args()
    header = machine()
    rows: list[dict[str, str]] = []
    failed = []
    for script in args.only or BENCHMARKS:
        found, status = run(script)
        rows += found
        if status != 0:
            failed.append(f"{script} (exit status {status})")
    print(f"\n## Overhead, each against its peer\n\n{header}\n\n{table(rows)}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
