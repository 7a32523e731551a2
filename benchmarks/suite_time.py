#!/usr/bin/env python
"""Is the test suite slower than at an earlier commit? The same tests against old and new code, interleaved.

    python benchmarks/suite_time.py --base a5bef16 --rounds 2

The earlier commit's own test files are run twice per round, once importing that commit's package (a git
worktree on PYTHONPATH) and once importing this checkout's, in the order base-head, head-base, ... so that
the machine's fast and slow spells fall on both. Tests listed in `--exclude` are deselected in both runs:
tests of internals the newer code removed (they fail against it) and tests whose behaviour was changed on
purpose. The ratio of the summed wall times is the answer; one process at a time, so keep the machine quiet.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(tests: Path, package_root: Path, deselect: list[str]) -> tuple[float, str]:
    """Wall seconds and pytest's summary line of the tests in `tests` importing the package at `package_root`."""
    # `python -m` puts the working folder first on sys.path: run from the package's own checkout.
    env = dict(os.environ, PYTHONPATH=str(package_root))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests),
               *(a for d in deselect for a in ("--deselect", d))]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=package_root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, (done.stdout.strip().splitlines() or ["(no output)"])[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="a5bef16", help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--exclude", default=str(Path(__file__).with_name("suite_time_exclude.txt")),
                        help="file of test ids to deselect (lines starting with # are comments)")
    args = parser.parse_args(argv)
    deselect = [line.strip() for line in Path(args.exclude).read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(base), args.base],
                       check=True, capture_output=True)
        totals = {"base": 0.0, "head": 0.0}
        try:
            for round_ in range(args.rounds):
                order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
                for which in order:
                    seconds, summary = run_suite(base / "tests", base if which == "base" else ROOT, deselect)
                    totals[which] += seconds
                    print(f"round {round_ + 1} {which}: {seconds:.0f} s ({summary})", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    print(f"total: base {totals['base']:.0f} s, head {totals['head']:.0f} s; head / base = "
          f"{totals['head'] / totals['base']:.3f}")


if __name__ == "__main__":
    main()
