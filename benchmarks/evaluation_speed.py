#!/usr/bin/env python
"""Evaluation-suite speed as ratios measured in one process, interleaved over rounds.

    python benchmarks/evaluation_speed.py [--model runs/madry/model.keras] [--rounds 3] [--steps 50]

- APGD-CE with N steps against the library's own PGD with N steps (same batch, same model): time ratio.
- Square's queries per second (counted per point, as `AttackResult.queries`; a point stops querying once
  fooled, so use a trained model) against the model's plain batched predict throughput (images per second through the same compiled forward pass).
- FAB-T and APGD-T (3 targets each) per step, for the record.

Prints a Markdown table; best of `--rounds` per row (the VM flips between a fast and a slow mode).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attdef import attacks, datasets, models  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved .keras model (default: a LeNet trained for one epoch)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    if args.model is None:
        # A trained model: on an untrained one most points start misclassified, Square skips them and its
        # queries per second measure only its overhead.
        keras.utils.set_random_seed(0)
        net = models.lenet()
        net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(*datasets.load("mnist", "train", limit=10000), batch_size=128, epochs=1, verbose=0)
    else:
        net = keras.models.load_model(args.model)
    net = getattr(net, "base_model", net)
    x, y = datasets.load("mnist", "test", limit=args.batch_size)
    x, y = tf.constant(x), tf.constant(y)
    n, steps, eps = args.batch_size, args.steps, 0.3
    pgd = tf.function(lambda x, y: attacks.pgd(net, x, y, eps=eps, steps=steps), autograph=False)
    apgd = tf.function(lambda x, y: attacks.apgd_ce(net, x, y, eps=eps, steps=steps), autograph=False)
    apgd_t = tf.function(lambda x, y: attacks.apgd_t(net, x, y, eps=eps, steps=steps, num_targets=3),
                         autograph=False)
    fab = tf.function(lambda x, y: attacks.fab_t(net, x, y, eps=eps, steps=steps, num_targets=3), autograph=False)
    forward = tf.function(lambda x: net(x, training=False), autograph=False)

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        np.asarray(out if not isinstance(out, tuple) else out[0])
        return time.perf_counter() - start

    def square_rate():  # queries per second, counted per point (stops early per fooled point)
        start = time.perf_counter()
        result = attacks.square(net, x.numpy(), y.numpy(), eps=eps, queries=args.queries, seed=0,
                                return_result=True)
        return float(np.sum(result.queries)) / (time.perf_counter() - start)

    def predict_rate():  # the batched forward pass, repeated like Square's query loop
        start = time.perf_counter()
        for _ in range(20):
            np.asarray(forward(x))
        return 20 * n / (time.perf_counter() - start)

    for fn in (lambda: pgd(x, y), lambda: apgd(x, y), lambda: apgd_t(x, y), lambda: fab(x, y)):
        timed(fn)  # trace and warm up
    square_rate(), predict_rate()
    best = {}
    for _ in range(args.rounds):
        for name, value in [("pgd", timed(lambda: pgd(x, y))), ("apgd", timed(lambda: apgd(x, y))),
                            ("apgd_t", timed(lambda: apgd_t(x, y))), ("fab_t", timed(lambda: fab(x, y))),
                            ("square", -square_rate()), ("predict", -predict_rate())]:
            best[name] = min(best.get(name, np.inf), value)
    pgd_s, apgd_s = best["pgd"], best["apgd"]
    square, predict = -best["square"], -best["predict"]
    model = args.model or "LeNet (plain, 1 epoch on 10,000 digits)"
    print(f"{model}, batch {n}, Linf eps {eps}, best of {args.rounds} interleaved rounds\n")
    print("| measure | value | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| PGD-{steps} | {pgd_s:.2f} s ({n * steps / pgd_s:.0f} image-steps/s) | 1.000 |")
    print(f"| APGD-CE-{steps} | {apgd_s:.2f} s ({n * steps / apgd_s:.0f} image-steps/s) | "
          f"{pgd_s / apgd_s:.3f} (speed vs PGD; goal >= 0.9) |")
    print(f"| APGD-T-{steps}, 3 targets | {best['apgd_t']:.2f} s | {3 * pgd_s / best['apgd_t']:.3f} (per step vs PGD) |")
    print(f"| FAB-T-{steps}, 3 targets | {best['fab_t']:.2f} s | {3 * pgd_s / best['fab_t']:.3f} (per step vs PGD) |")
    print(f"| batched predict | {predict:.0f} images/s | 1.000 |")
    print(f"| Square ({args.queries} queries) | {square:.0f} queries/s | {square / predict:.3f} "
          "(vs predict; goal >= 0.8) |")


if __name__ == "__main__":
    main()
