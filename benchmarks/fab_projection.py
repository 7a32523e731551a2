#!/usr/bin/env python
"""FAB-T's hyperplane projection: Newton's method against the doubling + bisection it replaced, in one process.

    python benchmarks/fab_projection.py [--model results/main_job/madry.keras] [--points 250] [--rounds 3]

Interleaved over `--rounds`: (1) the projection alone on `--points` digits of the test set (random planes,
Linf), (2) FAB-T (3 targets, 100 steps) on the main job's model with either projection. Prints each
round's times, the ratios (bisection / Newton) and FAB-T's accuracy with each (they must agree).
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
from keras_attdef.attacks import fab  # noqa: E402


def bisection_projection(point, w, c, norm: str, clip_min: float, clip_max: float):
    """The implementation before 2026-12-07: 20 doublings, then 20 bisections of r (40 passes)."""
    sign = tf.where(c >= 0, 1.0, -1.0)[:, None]
    direction = sign * (tf.sign(w) if norm == "linf" else w)
    low, high = clip_min - point, clip_max - point
    target = tf.abs(c)

    def reach(r):
        return tf.reduce_sum(sign * w * tf.clip_by_value(r[:, None] * direction, low, high), -1)

    dual = tf.reduce_sum(tf.abs(w), -1) if norm == "linf" else tf.reduce_sum(tf.square(w), -1)
    upper = target / (dual + 1e-12)
    for _ in range(20):
        upper = tf.where(reach(upper) < target, upper * 2, upper)
    lower = tf.zeros_like(upper)
    for _ in range(20):
        middle = (lower + upper) / 2
        short = reach(middle) < target
        lower, upper = tf.where(short, middle, lower), tf.where(short, upper, middle)
    return tf.clip_by_value(upper[:, None] * direction, low, high)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="results/main_job/madry.keras")
    parser.add_argument("--points", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = models.unwrap(keras.models.load_model(args.model))
    x, y = datasets.load("mnist", "test", limit=args.points)
    rng = np.random.default_rng(0)
    flat = tf.constant(x.reshape(len(x), -1))
    w = tf.constant(rng.normal(size=flat.shape).astype("float32"))
    c = tf.constant(rng.normal(size=len(x)).astype("float32"))
    newton = fab.project_on_hyperplane
    projections = {"bisection": tf.function(lambda p, a, b: bisection_projection(p, a, b, "linf", 0.0, 1.0)),
                   "newton": tf.function(lambda p, a, b: newton(p, a, b, "linf", 0.0, 1.0))}
    for fn in projections.values():
        fn(flat, w, c)
    steps = {name: projections[name](flat, w, c).numpy() for name in projections}
    print(f"projection: largest difference {np.abs(steps['bisection'] - steps['newton']).max():.2e}")

    def run_fab(name):
        fab.project_on_hyperplane = bisection_projection if name == "bisection" else newton
        adv = fab.fab_t(base, x, y, eps=0.3, steps=100, num_targets=3)
        return float(np.mean(models.predict_labels(base, np.asarray(adv)) == y))

    totals = {f"{kind} {name}": 0.0 for kind in ("projection x20", "FAB-T") for name in projections}
    for round_ in range(args.rounds):
        for name in projections:
            seconds, _ = timed(lambda: [projections[name](flat, w, c).numpy() for _ in range(20)])
            totals[f"projection x20 {name}"] += seconds
            seconds, accuracy = timed(run_fab, name)
            totals[f"FAB-T {name}"] += seconds
            print(f"round {round_}: {name}: FAB-T {seconds:.1f} s, accuracy {100 * accuracy:.1f}%")
    fab.project_on_hyperplane = newton
    for kind in ("projection x20", "FAB-T"):
        ratio = totals[f"{kind} bisection"] / totals[f"{kind} newton"]
        print(f"{kind}: bisection {totals[f'{kind} bisection']:.1f} s, newton {totals[f'{kind} newton']:.1f} s, "
              f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
