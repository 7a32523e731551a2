#!/usr/bin/env python
"""The LAN detector's cost: detection throughput as a ratio of the classifier's own predict throughput.

    python benchmarks/detection_speed.py [--detector runs/detect_mnist/detector.keras] [--rounds 5] [--n 5000]

Both through their public batch APIs on the same images and batch size: `classifier.predict(x)` (Keras)
and `detector.detect(x)` (input checks, f1, the mask generator G and the mask classifier f2 in one compiled
pass, then the decision). Without `--detector` a LeNet detector is fitted for one epoch on 512 digits:
throughput does not depend on how well it is trained. Best of `--rounds` interleaved rounds per side (the VM
flips between a fast and a slow mode). Goal of issue 12: ratio >= 0.3.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_attdef import datasets, detect, models  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default=None, help="a saved detector .keras (default: fit a small one)")
    parser.add_argument("--n", type=int, default=5000, help="test images per timing")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    if args.detector:
        detector = keras.models.load_model(args.detector)
    else:
        x, y = datasets.load("mnist", "train", limit=512)
        detector = detect.LatentAttentionDetector(models.lenet(), beta=1.0)
        detector.fit(x, y, generator_epochs=1, mask_epochs=1, verbose=0)
    classifier = detector.classifier
    x_test, _ = datasets.load("mnist", "test", limit=args.n)

    def rate(fn):
        start = time.perf_counter()
        fn()
        return len(x_test) / (time.perf_counter() - start)

    runs = {"predict": lambda: classifier.predict(x_test, batch_size=args.batch_size, verbose=0),
            "detect": lambda: detector.detect(x_test, batch_size=args.batch_size)}
    for fn in runs.values():
        fn()  # trace and warm up
    best = {name: 0.0 for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            best[name] = max(best[name], rate(fn))
    print(f"{args.detector or 'LeNet detector (fitted on 512 digits)'}, {len(x_test)} MNIST test images, "
          f"batch {args.batch_size}, best of {args.rounds} interleaved rounds\n")
    print("| measure | images / s |\n| --- | --- |")
    print(f"| classifier.predict | {best['predict']:.0f} |\n| detector.detect | {best['detect']:.0f} |")
    print(f"| **ratio detect / predict** | **{best['detect'] / best['predict']:.2f}** |")


if __name__ == "__main__":
    main()
