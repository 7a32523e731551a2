#!/usr/bin/env python
"""Multi-worker scaling on this machine: madry PGD-7 on LeNet, 1 and 2 workers, each pinned to one core.

    python benchmarks/multi_worker_scaling.py [--rounds 2] [--steps 30] [--batch-size 64]

Every run launches its workers as separate processes on loopback ports (`TF_CONFIG`), each pinned to its
own core with `taskset`, at the same batch per worker (weak scaling). Runs alternate 1, 2, 1, 2, ... so that
the machine's fast and slow phases fall on both. Prints images/s per worker, the 2-worker step's extra
time over the 1-worker step (gradient all-reduce plus waiting for the slower worker) and the bytes
all-reduced per step.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WARMUP = 5


def worker(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras
    import tensorflow as tf

    from keras_attdef import RobustModel, datasets, defenses, distribute, models

    strategy = distribute.multi_worker_strategy(timeout_seconds=120)
    workers = len(distribute.read_tf_config()["cluster"]["worker"])
    x, y = datasets.load("mnist", "train", limit=args.batch_size * workers * 8)
    data = tf.data.Dataset.from_tensor_slices((x, y.astype("int32"))).repeat().batch(args.batch_size * workers)
    with strategy.scope():
        robust = RobustModel(models.lenet(), defense=defenses.madry(eps=0.3, steps=7))
        robust.compile(optimizer="adam")
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    robust.fit(data, epochs=1, steps_per_epoch=WARMUP + args.steps, verbose=0, callbacks=[Clock()])
    step = sorted(times[WARMUP:])[len(times[WARMUP:]) // 2]  # median: robust to a stray slow step
    params = sum(int(w.numpy().size) for w in robust.base_model.trainable_weights)
    print(json.dumps({"workers": workers, "step_seconds": step, "images_per_second_per_worker": args.batch_size / step,
                      "allreduce_bytes": 4 * params}))


def run(workers: int, args) -> dict:
    from keras_attdef.distribute import local_cluster

    processes = []
    for index, config in enumerate(local_cluster(workers)):
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        command = ["taskset", "-c", str(index % os.cpu_count()), sys.executable, __file__, "--worker",
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    results = [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]
    if len(results) != workers:
        raise RuntimeError(f"{workers}-worker run failed: {outputs}")
    return max(results, key=lambda r: r["step_seconds"])  # the step ends when the slowest worker's does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="per worker")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    rows = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            rows[workers].append(run(workers, args))
    one = sorted(r["step_seconds"] for r in rows[1])
    two = sorted(r["step_seconds"] for r in rows[2])
    print("| workers | step (s), per round | images/s per worker | images/s total |")
    print("|---|---|---|---|")
    for workers, steps in ((1, one), (2, two)):
        best = min(steps)
        print(f"| {workers} | {', '.join(f'{s:.3f}' for s in steps)} | {args.batch_size / best:.0f} | "
              f"{workers * args.batch_size / best:.0f} |")
    extra = min(two) - min(one)
    print(f"\n2-worker step over 1-worker step: {min(two) / min(one):.2f}x; extra {extra * 1000:.0f} ms "
          f"({100 * extra / min(two):.0f}% of the 2-worker step: all-reduce of "
          f"{rows[1][0]['allreduce_bytes'] / 1e6:.2f} MB plus waiting for the slower worker).")


if __name__ == "__main__":
    main()
