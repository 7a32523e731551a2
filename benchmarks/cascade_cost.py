#!/usr/bin/env python
"""The AutoAttack-style cascade's cost model: each part's passes per point and time against this machine's limit.

    python benchmarks/cascade_cost.py [--model results/main_job/madry.keras] [--points 1000] [--precision bfloat16]

In one process: the model's batched predict and input-gradient throughput (images/s, batch 500, measured
before and after the cascade; the faster counts), then the standard cascade on the first test digits.
A part's limit is its passes (forward or forward+backward) divided by that throughput: APGD-CE 100
gradients per point; APGD-T 9 targets x 100; FAB-T 9 targets x 100 steps of one gradient (of the
true-minus-target logit gap) and one forward (is the new point adversarial?); Square 5,000 forwards per
point still robust. With `--precision bfloat16` the attacks and the throughput run on the bfloat16 copy the
cascade attacks (`evaluation.precision`). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attdef import datasets, models  # noqa: E402
from keras_attdef.evaluation import autoattack  # noqa: E402
from keras_attdef.evaluation.precision import PRECISIONS, attack_model  # noqa: E402

# (gradient passes, forward-only passes) per point a part of the standard cascade runs on.
PASSES = {"APGD-CE": (100, 0), "APGD-T": (900, 0), "FAB-T": (900, 900), "Square": (0, 5000)}


def throughput(base, x, y, repeats: int = 20) -> dict:
    xb, yb = tf.constant(x[:500]), tf.constant(y[:500].astype("int32"))
    predict = tf.function(lambda a: base(a, training=False))

    @tf.function
    def gradient(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, base(a, training=False)))
        return tape.gradient(loss, a)

    rates = {}
    for kind, fn in (("forward", predict), ("gradient", gradient)):
        fn(xb)
        start = time.perf_counter()
        for _ in range(repeats):
            fn(xb).numpy()
        rates[kind] = repeats * len(xb) / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="results/main_job/madry.keras")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    args = parser.parse_args()
    base = models.unwrap(keras.models.load_model(args.model))
    attacked = attack_model(base, args.precision)
    x, y = datasets.load("mnist", "test", limit=args.points)
    before = throughput(attacked, x, y)
    result = autoattack(base, x, y, 0.3, version="standard", progress=False, precision=args.precision)
    after = throughput(attacked, x, y)
    rate = {k: max(before[k], after[k]) for k in before}
    print(f"throughput: forward {rate['forward']:.0f} images/s, gradient {rate['gradient']:.0f} images/s "
          f"(before {before}, after {after})\n")
    print("| part | points attacked | passes per point | limit (s) | measured (s) | measured / limit |")
    print("|---|---:|---:|---:|---:|---:|")
    remaining = round(result.accuracy["clean"] * len(y))
    previous = "clean"
    total_limit = 0.0
    for part, (gradients, forwards) in PASSES.items():
        points = remaining if previous == "clean" else round(result.accuracy[f"after {previous}"] * len(y))
        limit = points * (gradients / rate["gradient"] + forwards / rate["forward"])
        total_limit += limit
        seconds = result.seconds[part]
        passes = " + ".join(f"{n} {kind}" for n, kind in ((gradients, "gradient"), (forwards, "forward")) if n)
        print(f"| {part} | {points} | {passes} | {limit:.0f} | {seconds:.0f} | {seconds / limit:.2f} |")
        previous = part
    print(f"\ncascade {sum(result.seconds.values()):.0f} s against a limit of {total_limit:.0f} s; "
          f"robust {100 * result.accuracy['robust']:.1f}% (clean {100 * result.accuracy['clean']:.1f}%)")


if __name__ == "__main__":
    main()
