#!/usr/bin/env python
"""Training throughput (images/s) of plain Keras and RobustModel defences on LeNet/MNIST, same process.

    python benchmarks/train_throughput.py [--steps 60] [--batch-size 128] [--configs plain madry aad] [--jit]

Prints a Markdown table with each configuration's images/s and its ratio to plain Keras training.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # TF leaves oneDNN off on this CPU; on, steps ran ~1.8x faster

import keras  # noqa: E402

from keras_attdef import RobustModel, datasets, models  # noqa: E402
from keras_attdef.defenses import PRESETS  # noqa: E402


class HandWrittenPGD(keras.Model):
    """The anchor's kind of step: a ~30-line Keras PGD-7 train_step written by hand (no library code).

    Timing it next to `madry` in one process separates the cost of PGD-7 on this CPU from any overhead
    of RobustModel's step.
    """

    def __init__(self, base, eps=0.3, step_size=0.1, steps=7, **kwargs):
        super().__init__(**kwargs)
        self.base, self.eps, self.step_size, self.steps = base, eps, step_size, steps
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def call(self, x, training=False):
        return self.base(x, training=training)

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        x_adv = tf.clip_by_value(x + tf.random.uniform(tf.shape(x), -self.eps, self.eps), 0.0, 1.0)
        for _ in range(self.steps):  # unrolled, as Keras runs train_step without AutoGraph
            with tf.GradientTape() as tape:
                tape.watch(x_adv)
                loss = self.loss_fn(y, self.base(x_adv, training=False))
            x_adv = x_adv + self.step_size * tf.sign(tape.gradient(loss, x_adv))
            x_adv = tf.clip_by_value(tf.clip_by_value(x_adv, x - self.eps, x + self.eps), 0.0, 1.0)
        x_adv = tf.stop_gradient(x_adv)
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.base(x_adv, training=True))
        grads = tape.gradient(loss, self.base.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.base.trainable_variables))
        return {"loss": loss}


def _configs():
    """Plain Keras, the hand-written step, and every LeNet preset of the registry at PGD-7 (step 0.1), eps 0.3."""
    configs = {"plain keras": None, "hand-written keras PGD-7": HandWrittenPGD}
    for name, preset in PRESETS.items():
        if preset.model is None and name != "plain":
            configs[name] = lambda preset=preset: preset.from_options(eps=0.3, steps=7, step_size=0.1,
                                                                      teacher=models.lenet(name="teacher"))
    return configs


def measure(model: keras.Model, dataset, steps: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--configs", nargs="*", default=None, help="substrings of configuration names")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per configuration, interleaved; the best counts (the VM is noisy)")
    parser.add_argument("--jit", action="store_true", help="compile every model with XLA (for GPUs)")
    args = parser.parse_args(argv)
    x, y = datasets.load("mnist", "train", limit=args.batch_size * 20)
    ds = datasets.as_dataset(x, y, args.batch_size, shuffle=True, seed=0, drop_remainder=True, repeat=True)
    compiled = {}
    for name, make in _configs().items():
        if args.configs and not any(c in name for c in args.configs) and name != "plain keras":
            continue
        keras.utils.set_random_seed(0)
        base = models.lenet()
        if make is None:
            model = base
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"], jit_compile=args.jit)
        elif make is HandWrittenPGD:
            model = HandWrittenPGD(base)
            model.compile(optimizer="adam", jit_compile=args.jit)
        else:
            model = RobustModel(base, defense=make(), eval_attack=None)
            model.compile(optimizer="adam", metrics=["accuracy"], jit_compile=args.jit)
        model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace and warm up
        compiled[name] = model
    rates = {name: [] for name in compiled}
    for repeat in range(args.repeats):
        for name, model in compiled.items():
            seconds = measure(model, ds, args.steps)
            rates[name].append(args.steps * args.batch_size / seconds)
            print(f"run {repeat + 1}: {name}: {rates[name][-1]:.0f} images/s", flush=True)
    plain_rate = max(rates["plain keras"])
    print(f"\nLeNet / MNIST, batch {args.batch_size}, best of {args.repeats} interleaved runs of {args.steps} "
          "steps\n")
    print("| configuration | images/s | ratio to plain |\n| --- | ---: | ---: |")
    for name, values in rates.items():
        print(f"| {name} | {max(values):.0f} | {max(values) / plain_rate:.3f} |")


if __name__ == "__main__":
    main()
