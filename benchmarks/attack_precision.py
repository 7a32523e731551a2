#!/usr/bin/env python
"""The standard AutoAttack-style cascade with its attacks in float32 and in bfloat16, on the same points.

    python benchmarks/attack_precision.py [--model results/main_job/madry.keras] [--points 1000] [--rounds 1]

In one process, interleaved (float32 then bfloat16, `--rounds` times, each from the same seed): each part's
seconds and the accuracy after it, then the per-point comparison of the two worst cases (points robust under
one precision and fooled under the other). Both judge every candidate on the float32 model
(`evaluation.precision`), so they differ only in how strong the attacks are. Prints Markdown.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attdef import datasets, models  # noqa: E402
from keras_attdef.evaluation import autoattack  # noqa: E402
from keras_attdef.evaluation.precision import PRECISIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="results/main_job/madry.keras")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--version", default="standard", choices=["standard", "fast"])
    args = parser.parse_args()
    base = models.unwrap(keras.models.load_model(args.model))
    x, y = datasets.load("mnist", "test", limit=args.points)
    runs = {precision: [] for precision in PRECISIONS}
    for round_ in range(args.rounds):
        for precision in PRECISIONS:
            result = autoattack(base, x, y, 0.3, version=args.version, progress=False, precision=precision)
            runs[precision].append(result)
            print(f"round {round_ + 1} {precision}: {sum(result.seconds.values()):.0f} s, robust "
                  f"{100 * result.accuracy['robust']:.1f}%", flush=True)
    parts = list(runs["float32"][0].seconds)
    print(f"\n{args.points} digits, {args.version} cascade, {args.rounds} round(s); seconds are means over rounds\n")
    print("| part | float32 s | bfloat16 s | ratio | accuracy after, float32 | accuracy after, bfloat16 |")
    print("|---|---:|---:|---:|---:|---:|")
    for part in [*parts, "cascade"]:
        seconds = {p: np.mean([sum(r.seconds.values()) if part == "cascade" else r.seconds[part] for r in rs])
                   for p, rs in runs.items()}
        key = "robust" if part == "cascade" else f"after {part}"
        after = {p: 100 * rs[0].accuracy[key] for p, rs in runs.items()}
        print(f"| {part} | {seconds['float32']:.0f} | {seconds['bfloat16']:.0f} | "
              f"{seconds['float32'] / seconds['bfloat16']:.2f} | {after['float32']:.1f}% | {after['bfloat16']:.1f}% |")
    full, low = runs["float32"][0].robust, runs["bfloat16"][0].robust
    print(f"\nrobust in float32 only: {int(np.sum(full & ~low))}; robust in bfloat16 only (the cheaper attacks "
          f"missed them): {int(np.sum(low & ~full))}")


if __name__ == "__main__":
    main()
