#!/usr/bin/env python
"""Attention shift of a trained model under an attack (AAD paper, Tables 3-4) and a PNG grid.

    python scripts/attention_analysis.py runs/plain/model.keras --attack step_ll --eps 0.15 --out runs/attention

Prints the average top-k attention IoU between clean and adversarial images, split by whether the attack
succeeded (k = 5, 10, 20, 30), per attack round, and writes `<out>/attention_grid.png`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_attdef import AttackSpec, analysis, datasets  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path")
    parser.add_argument("--attack", default="step_ll")
    parser.add_argument("--eps", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layer", default=None)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--out", default="runs/attention")
    args = parser.parse_args(argv)
    model = keras.models.load_model(args.model_path)
    model = getattr(model, "base_model", model)
    x, y = datasets.load("mnist", "test", limit=args.size)
    spec = AttackSpec(args.attack, eps=args.eps)
    shift = analysis.attention_shift(model, x, y, spec, layer=args.layer, rounds=args.rounds)
    text = f"Command: `python {' '.join(sys.argv)}`\n\n{shift.to_markdown()}"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention_shift.md").write_text(text + "\n")
    print("grid:", analysis.attention_grid(model, x, y, spec, out / "attention_grid.png", layer=args.layer))


if __name__ == "__main__":
    main()
