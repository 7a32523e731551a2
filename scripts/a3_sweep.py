#!/usr/bin/env python
"""A3 (attention-augmented) attacks against their base attacks on plainly trained MNIST LeNets.

    python scripts/a3_sweep.py [--out runs/a3_sweep.json]

Trains three small plain LeNets (1 epoch on 3,000 / 3,000 / 6,000 training digits, seeds 0-2), then
measures accuracy on the first 512 test digits under I-FGSM and Iter-LL (3 iterations, eps 0.1, as the
paper's Table 9 uses 3 iterations) and under their A3 variants for sigma in {0.01, 0.1, 1, 10}, with raw
and max-normalised Grad-CAM maps. Lower accuracy = stronger attack. Writes a JSON and prints a table;
each A3 cell shows (digits only A3 fools / digits only the base attack fools), the paired counts a
McNemar test reads.
"""
from __future__ import annotations

import argparse
import json

import keras
import numpy as np

from keras_attdef import attacks, datasets, models

SIGMAS = (0.01, 0.1, 1.0, 10.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/a3_sweep.json")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--test-size", type=int, default=512)
    parser.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS))
    parser.add_argument("--maps", default="raw,max", help="Grad-CAM maps: raw and/or max(-normalised)")
    parser.add_argument("--models", default="A,B,C", help="which of the three plain LeNets")
    args = parser.parse_args(argv)
    sigmas = [float(v) for v in args.sigmas.split(",")]
    maps = args.maps.split(",")
    x, y = datasets.load("mnist", "train", limit=20000)
    xt, yt = datasets.load("mnist", "test", limit=args.test_size)
    bases = {"I-FGSM(3)": (attacks.ifgsm, dict(eps=args.eps, steps=3), True),
             "Iter-LL(3)": (attacks.iter_ll, dict(eps=args.eps, step_size=args.eps / 3, rounds=3), False)}

    def correct(net, images):
        return np.argmax(net.predict(images, verbose=0, batch_size=256), -1) == yt

    results = {}
    for name, (size, seed) in {"A": (3000, 0), "B": (3000, 1), "C": (6000, 2)}.items():
        if name not in args.models.split(","):
            continue
        keras.utils.set_random_seed(seed)
        net = models.lenet()
        net.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(x[seed * 6000:seed * 6000 + size], y[seed * 6000:seed * 6000 + size], batch_size=64, epochs=1,
                verbose=0)
        row = {"clean": float(np.mean(correct(net, xt)))}
        for base_name, (attack, kwargs, needs_labels) in bases.items():
            labels = yt if needs_labels else None
            base_correct = correct(net, attack(net, xt, labels, **kwargs))
            row[base_name] = float(np.mean(base_correct))
            for kind in maps:
                for sigma in sigmas:
                    a3 = attacks.attention_augmented(attack, sigma=sigma, normalize=None if kind == "raw" else "max")
                    a3_correct = correct(net, a3(net, xt, labels, **kwargs))
                    key = f"{base_name}+A3 {kind} s={sigma:g}"
                    row[key] = float(np.mean(a3_correct))
                    # paired counts (McNemar): digits only A3 fools, digits only the base attack fools
                    row[key + " only_a3_fools"] = int(np.sum(base_correct & ~a3_correct))
                    row[key + " only_base_fools"] = int(np.sum(~base_correct & a3_correct))
        results[name] = row
        print(name, row, flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    columns = [f"{kind} s={sigma:g}" for kind in maps for sigma in sigmas]
    header = " | ".join(c.replace("s=", "σ=") for c in columns)
    print(f"\n| model | clean | attack | base | {header} |\n| --- | ---: | --- | ---: |" + " ---: |" * len(columns))
    for name, row in results.items():
        for base_name in bases:
            keys = [f"{base_name}+A3 {c}" for c in columns]
            marked = [(f"**{100 * row[k]:.1f}%**" if row[k] < row[base_name] else f"{100 * row[k]:.1f}%")
                      + f" ({row[k + ' only_a3_fools']}/{row[k + ' only_base_fools']})" for k in keys]
            print(f"| {name} | {100 * row['clean']:.1f}% | {base_name} | {100 * row[base_name]:.1f}% | "
                  + " | ".join(marked) + " |")


if __name__ == "__main__":
    main()
