#!/usr/bin/env python
"""Train several defences on MNIST under one wall-clock budget each and tabulate their robustness.

    python scripts/compare_defenses.py --minutes 8 --defenses madry aad_pgd at_alp atat --out runs/compare

Every defence (any preset of `keras_attdef.defenses.PRESETS`) gets the same attack budget (Linf eps 0.3,
PGD-7 with step 2.5 eps / 7 where the preset runs PGD, eps ramped over the first --warmup-steps steps) and
the same training time; ATAT's teacher is the plain model trained first. Evaluation: clean, FGSM, StepLL, Iter-LL (2 rounds) and PGD-40 (step 0.01) at eps 0.3 on the first
--eval-size test digits. Finished models are kept, so a stopped run resumes with the next defence.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

from keras_attdef import RobustModel, datasets, evaluate_robustness, models  # noqa: E402
from keras_attdef.callbacks import TimeBudget  # noqa: E402
from keras_attdef.defenses import PRESETS  # noqa: E402
from keras_attdef.evaluation import default_attacks  # noqa: E402
from keras_attdef.tables import markdown_table, percent  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defenses", nargs="+", default=["madry", "aad_pgd", "at_alp", "atat"],
                        choices=sorted(set(PRESETS) - {"plain", "certified"}))
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per defence")
    parser.add_argument("--plain-minutes", type=float, default=1.5)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup-steps", type=int, default=469)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--out", default="runs/compare")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load("mnist", "train")
    x_test, y_test = datasets.load("mnist", "test", limit=args.eval_size)
    train = datasets.as_dataset(x, y, args.batch_size, shuffle=True, seed=0)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    teacher = None
    for name in ["plain", *args.defenses]:
        path = out / f"{name}.keras"
        if path.exists():
            robust = keras.models.load_model(path)
        else:
            keras.utils.set_random_seed(0)
            defense = PRESETS[name].from_options(eps=args.eps, steps=args.steps, warmup_steps=args.warmup_steps,
                                                 teacher=teacher)
            robust = RobustModel(models.lenet(), defense=defense, eval_attack=None)
            robust.compile(optimizer="adam", metrics=["accuracy"])
            budget = TimeBudget(60 * (args.plain_minutes if name == "plain" else args.minutes))
            robust.fit(train, epochs=1000, verbose=0, callbacks=[budget], shuffle=False)
            robust.save(path)
            report = evaluate_robustness(robust, (x_test, y_test), default_attacks(args.eps), progress=False)
            results[name] = {"seconds": round(budget.elapsed), "steps": budget.steps_seen,
                             "accuracy": report.accuracy}
            (out / "results.json").write_text(json.dumps(results, indent=2))
            print(name, json.dumps(results[name]), flush=True)
        if name == "plain":
            teacher = robust.base_model
    columns = list(next(iter(results.values()))["accuracy"])
    rows = [[name, row["seconds"], row["steps"], *(percent(row["accuracy"][c], 1) for c in columns)]
            for name, row in results.items()]
    table = f"Command: `python {' '.join(sys.argv)}`\n\n" + markdown_table(["defence", "train s", "steps", *columns], rows)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
