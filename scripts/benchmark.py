"""Time the whole suite against the embedded reference, serially and with xdist.

    python scripts/benchmark.py [--runs N]

Prints wall time per mode (best of N), the number of HTTP exchanges the checks recorded,
and exchanges per second. Run it on an idle machine; it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(extra: list[str]) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        started = time.perf_counter()
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
                str(report),
                *extra,
            ],
            cwd=tmp,
            capture_output=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        checks = json.loads((report / "results.json").read_text())["checks"]
        return elapsed, len(checks), sum(len(c["evidence"]) for c in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for label, extra in (("serial", []), ("-n 2", ["-n", "2"])):
        timings = [run_once(extra) for _ in range(args.runs)]
        best, checks, exchanges = min(timings)
        print(
            f"{label:>7}: {best:6.2f} s wall (best of {args.runs}), {checks} checks, "
            f"{exchanges} recorded exchanges, {exchanges / best:6.1f} exchanges/s"
        )


if __name__ == "__main__":
    main()
