#!/usr/bin/env python
"""The attention defences' terms one at a time against madry, at equal epochs (issue 11, item 3).

    python scripts/ablate.py --family aad --out runs/ablate_aad
    python scripts/ablate.py --family pairing --out runs/ablate_pairing

Every variant of a family in `keras_attdef.experiments.ablation.FAMILIES` (or those named with
--variants) trains the same model for the same epochs on the same batches (PGD-3 rounds by default, so
that ten variants fit in about an hour on two CPU cores), then meets the AutoAttack-style cascade on the
first 1,000 test digits. Resumes per epoch and per evaluated variant; rerun the same command after a stop.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_attdef.experiments.ablation import FAMILIES, VARIANTS, ablate  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="aad")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="these variants instead of the family's (a teacher before its ATAT variants)")
    parser.add_argument("--model", default="small_lenet", choices=["small_lenet", "lenet"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="PGD steps per round")
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--version", default="fast", choices=["fast", "standard"],
                        help="AutoAttack-style cascade version")
    parser.add_argument("--train-size", type=int, default=None, help="first N training digits (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="default runs/ablate_FAMILY")
    args = parser.parse_args(argv)
    table = ablate(args.out or f"runs/ablate_{args.family}", args.variants or FAMILIES[args.family], args.model,
                   args.epochs, args.steps, eval_size=args.eval_size, version=args.version,
                   train_size=args.train_size, data_dir=args.data_dir, seed=args.seed)
    print(f"Command: `python {' '.join(sys.argv)}`\n\n{table}")


if __name__ == "__main__":
    main()
