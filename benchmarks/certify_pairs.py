#!/usr/bin/env python
"""Wall time of the eigenvalue certificate for all 90 class pairs of a 784-500-10 network (Linf eps box).

    python benchmarks/certify_pairs.py [--model runs/certify_linf/certified.keras] [--eps 0.1] [--iterations 20]

With a saved certified-training model (`keras-attdef certify --threat linf`) it times the pair bounds
cold (from the |B| row/column sums) and warm (from the duals learnt in training); without one it times
a freshly initialised 784-500-10 net cold. Also reports the certified-training step cost against a plain
step of the same net. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attdef import RobustModel, certify, defenses, models  # noqa: E402


def _step_ms(defense, hidden: int, steps: int = 30, batch: int = 128) -> float:
    rng = np.random.default_rng(0)
    x, y = rng.random((batch * steps, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, batch * steps)
    robust = RobustModel(models.two_layer_dense(hidden), defense, eval_attack=None)
    robust.compile(optimizer="adam")
    robust.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # trace
    start = time.perf_counter()
    robust.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return 1000 * (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/certify_linf/certified.keras")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args(argv)

    rows = []
    if os.path.exists(args.model):
        robust = keras.models.load_model(args.model)
        net, starts = robust.base_model, robust.defense.duals.numpy_duals()
        runs = [("cold start", None), ("warm start (trained duals)", starts)]
    else:
        print(f"{args.model} not found: timing a freshly initialised 784-500-10 net, cold start only")
        keras.utils.set_random_seed(0)
        net, runs = models.two_layer_dense(500), [("cold start (untrained net)", None)]
    logits_dim = net.output_shape[-1]
    for name, start in runs:
        t0 = time.perf_counter()
        table = certify.pair_bounds(net, args.eps, iterations=args.iterations, progress=True, starts=start)
        seconds = time.perf_counter() - t0
        rows.append((name, seconds, float(table[~np.eye(logits_dim, dtype=bool)].mean())))
    print(f"\n784-{net.layers[-2].units}-10, Linf eps {args.eps}, {logits_dim * (logits_dim - 1)} class pairs, "
          f"{args.iterations} L-BFGS iterations per pair, every bound re-checked in float64\n")
    print("| duals | seconds | mean pair bound |\n| --- | ---: | ---: |")
    for name, seconds, mean in rows:
        print(f"| {name} | {seconds:.1f} | {mean:.3f} |")
    plain = _step_ms(defenses.plain(), 500)
    cert = _step_ms(defenses.certified(args.eps), 500)
    print(f"\nTraining step, batch 128, 784-500-10: plain {plain:.1f} ms, certified (90 pair bounds, 2 power "
          f"iterations) {cert:.1f} ms ({cert / plain:.1f}x)")


if __name__ == "__main__":
    main()
