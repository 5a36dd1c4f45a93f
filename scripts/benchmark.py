"""Time the whole suite against the embedded reference, serially and with xdist.

    python scripts/benchmark.py [--runs N] [--mode serial|-n 2]

For each mode, the best of N runs (by wall time): the wall and CPU time, the HTTP exchanges
the run sent (all of them: those the fuzz checks keep out of the evidence too), exchanges
per second, and the suite's own overhead per exchange. The overhead comes from each check
record's `timing` (measured inside the run, so it works under xdist): the seconds the checks
spent (setup and call, session fixtures included) minus the seconds they spent waiting on
the target (from a request sent to its response read; against the embedded target this
includes the in-process servers' own work, and their start-up), divided by the exchanges.
Every run writes every report into its report directory, as `make demo` does; a last line
says how long report.html and summary.md take to render from the results.

Run it on an idle machine; it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = {"serial": [], "-n 2": ["-n", "2"]}


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float  # user and system, of the run's processes (xdist workers included)
    checks: int
    exchanges: int
    checks_s: float  # summed over the checks (over the workers too, under xdist)
    waiting_s: float

    @property
    def exchanges_per_s(self) -> float:
        return self.exchanges / self.wall_s

    @property
    def overhead_ms(self) -> float:
        """The suite's own time per exchange, in milliseconds."""
        return (self.checks_s - self.waiting_s) / max(1, self.exchanges) * 1000


def measurement(wall_s: float, cpu_s: float, results: dict[str, Any]) -> Measurement:
    timings = [c["timing"] for c in results["checks"] if "timing" in c]
    return Measurement(
        wall_s=wall_s,
        cpu_s=cpu_s,
        checks=len(results["checks"]),
        exchanges=sum(t["exchanges"] for t in timings),
        checks_s=sum(t["duration_s"] for t in timings),
        waiting_s=sum(t["waiting_s"] for t in timings),
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(extra: list[str]) -> tuple[Measurement, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        cpu_started, started = _children_cpu_s(), time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--target",
                "embedded",
                "--report-dir",
                str(report),  # every report, as `make demo` writes them
                *extra,
            ],
            cwd=tmp,
            capture_output=True,
            check=True,
        )
        wall_s, cpu_s = time.perf_counter() - started, _children_cpu_s() - cpu_started
        results = json.loads((report / "results.json").read_text())
        return measurement(wall_s, cpu_s, results), results


def render_times(results: dict[str, Any], runs: int) -> str:
    """How long the reports written from results.json take to render (best of `runs`); the
    wall times above include them."""
    from reports.html import render_html
    from reports.markdown import render_summary

    timed = []
    for name, render in (("report.html", render_html), ("summary.md", render_summary)):
        best = min(_seconds(render, results) for _ in range(runs))
        timed.append(f"{name} {best * 1000:.0f} ms")
    return f"rendering from results.json ({len(results['checks'])} checks): " + ", ".join(timed)


def _seconds(render: Any, results: dict[str, Any]) -> float:
    started = time.perf_counter()
    render(results)
    return time.perf_counter() - started


def describe(label: str, best: Measurement, runs: int) -> str:
    return (
        f"{label:>7}: {best.wall_s:6.2f} s wall (best of {runs}), {best.cpu_s:5.2f} s CPU, "
        f"{best.checks} checks, "
        f"{best.exchanges} exchanges, {best.exchanges_per_s:6.1f} exchanges/s, "
        f"harness overhead {best.overhead_ms:.2f} ms/exchange "
        f"({best.checks_s - best.waiting_s:.2f} s of {best.checks_s:.2f} s in checks)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (the best counts)")
    parser.add_argument(
        "--mode", choices=list(MODES), action="append", help="only this mode (repeatable)"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs: give one or more")
    results: dict[str, Any] = {}
    for label in args.mode or list(MODES):
        runs = [run_once(MODES[label]) for _ in range(args.runs)]
        best, results = min(runs, key=lambda run: run[0].wall_s)
        print(describe(label, best, args.runs), flush=True)
    print(render_times(results, args.runs))


if __name__ == "__main__":
    main()
