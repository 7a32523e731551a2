#!/usr/bin/env python
"""Does the test suite still catch broken code? Five deliberate bugs, each run against two suites.

    python benchmarks/suite_power.py --base bfdf59d            # the suite before issue 31 against HEAD's

For each mutation (one library function broken by a text substitution) and each commit, a git worktree of
that commit gets the bug, and the test files that cover the broken module run with `-x` against it. A
failing run means the suite caught the bug. The files run are a subset of the whole suite (what tests the
module), so a failure there is a failure of the whole suite; a pass would only say this subset missed it.
Prints one line per (mutation, commit) and a table for benchmarks/RESULTS.md.
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

# name -> (file, text, replacement, test files and doctest modules to run)
MUTATIONS = {
    "engine.project skips the Linf clip": (
        "keras_attdef/attacks/engine.py", "delta = tf.clip_by_value(delta, -eps, eps)", "delta = delta",
        ["tests/test_contracts.py", "tests/test_attacks.py"]),
    "autoattack keeps fooled points robust": (
        "keras_attdef/evaluation/autoattack.py", "robust[hit] = False", "robust[hit] = True",
        ["tests/test_evaluation_suite.py", "keras_attdef/evaluation/autoattack.py"]),
    "TRADES' KL term compares a point with itself": (
        "keras_attdef/defenses/pairing.py", "kl = replica_mean(kl_divergence(clean_logits, adv_logits))",
        "kl = replica_mean(kl_divergence(clean_logits, clean_logits))",
        ["tests/test_attention_defenses.py", "tests/test_robust_model.py"]),
    "the L1 distance squares": (
        "keras_attdef/losses.py", "return tf.reduce_sum(tf.abs(diff), axis=-1)",
        "return tf.reduce_sum(tf.square(diff), axis=-1)",
        ["tests/test_attention_defenses.py", "keras_attdef/losses.py"]),
    "warp intervals miss the integer shifts (an unsound certificate)": (
        "keras_attdef/certify/intervals.py", "candidates.append(np.where(abs(k) < rho, float(k), 0.0))", "pass",
        ["tests/test_spatial.py", "tests/test_certify.py"]),
}


def run(commit: str, mutation: tuple, data: str | None) -> tuple[bool, float, str]:
    """(caught, seconds, pytest's last line) for one mutation at one commit."""
    path, text, replacement, targets = mutation
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(tree), commit],
                       check=True, capture_output=True)
        try:
            source = (tree / path).read_text()
            if text not in source:
                return False, 0.0, f"(mutation does not apply at {commit})"
            (tree / path).write_text(source.replace(text, replacement, 1))
            env = dict(os.environ, PYTHONPATH=str(tree), KERAS_ATTDEF_TEST_CACHE=str(Path(tmp) / "cache"))
            if data:
                env["KERAS_ATTDEF_DATA"] = data
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                   "--doctest-modules", *targets], cwd=tree, env=env, capture_output=True, text=True)
            last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            return done.returncode != 0, time.perf_counter() - start, last
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="bfdf59d", help="the commit of the old suite")
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--data", default=os.environ.get("KERAS_ATTDEF_DATA"), help="the offline data folder")
    parser.add_argument("--only", nargs="+", default=None, help="run only the mutations whose names contain these")
    args = parser.parse_args(argv)
    rows = []
    for name, mutation in MUTATIONS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        outcome = {}
        for label, commit in (("old", args.base), ("new", args.head)):
            caught, seconds, last = run(commit, mutation, args.data)
            outcome[label] = f"{'caught' if caught else 'MISSED'} ({seconds:.0f} s)"
            print(f"{name} [{label} suite, {commit}]: {outcome[label]}: {last}", flush=True)
        rows.append(f"| {name} | `{mutation[0]}` | {outcome['old']} | {outcome['new']} |")
    print("\n| mutation | file | old suite | new suite |\n| --- | --- | --- | --- |\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
