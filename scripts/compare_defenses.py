#!/usr/bin/env python
"""Train several defences on MNIST under one wall-clock budget each and tabulate their robustness.

    python scripts/compare_defenses.py --minutes 4 --out runs/compare

Every defence (any preset of `keras_attdef.defenses.PRESETS`) gets the same attack budget (Linf eps 0.3,
PGD-7 with step 2.5 eps / 7 where the preset runs PGD, eps ramped over the first --warmup-steps steps) and
the same training time; ATAT's teacher is the plain model trained first. Evaluation on the first
--eval-size test digits at eps 0.3: clean, FGSM, StepLL, Iter-LL (2 rounds), PGD-20 and PGD-40 (step 0.01);
with `--suite autoattack` (the default) also the AutoAttack-style suite (`keras_attdef.evaluation.evaluate`:
APGD-CE, APGD-T, FAB-T, Square, PGD-100; its per-digit worst case) and the masking audit's flags, with
each model's report under `OUT/NAME/evaluation/`.

Every finished stage (a model, its table, its suite) is kept, so a stopped run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

from keras_attdef import RobustModel, datasets, evaluate_robustness, models  # noqa: E402
from keras_attdef.callbacks import TimeBudget  # noqa: E402
from keras_attdef.defenses import PRESETS  # noqa: E402
from keras_attdef.evaluation import pgd_table  # noqa: E402
from keras_attdef.experiments.reproduction import suite_stage  # noqa: E402
from keras_attdef.experiments.store import ResultStore  # noqa: E402
from keras_attdef.tables import markdown_table, percent  # noqa: E402

MODELS = {"lenet": models.lenet, "small_lenet": models.small_lenet}


def train(name, args, x, y, teacher):
    """Trains preset `name` for its time budget; returns the RobustModel and its training figures."""
    keras.utils.set_random_seed(0)
    defense = PRESETS[name].from_options(eps=args.eps, steps=args.steps, warmup_steps=args.warmup_steps,
                                         teacher=teacher)
    robust = RobustModel(MODELS[args.model](), defense=defense, eval_attack=None)
    robust.compile(optimizer="adam", metrics=["accuracy"])
    budget = TimeBudget(60 * (args.plain_minutes if name == "plain" else args.minutes))
    train_set = datasets.as_dataset(x, y, args.batch_size, shuffle=True, seed=0)
    robust.fit(train_set, epochs=1000, verbose=0, callbacks=[budget], shuffle=False)
    return robust, {"seconds": round(budget.elapsed), "steps": budget.steps_seen}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defenses", nargs="+", default=["madry", "aad_pgd", "at_alp", "atat"],
                        choices=sorted(set(PRESETS) - {"plain", "certified"}))
    parser.add_argument("--model", default="lenet", choices=sorted(MODELS))
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per defence")
    parser.add_argument("--plain-minutes", type=float, default=1.5)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup-steps", type=int, default=469)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--suite", default="autoattack", choices=["autoattack", "none"],
                        help="add the AutoAttack-style suite and its masking audit to the table")
    parser.add_argument("--out", default="runs/compare")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.json")
    x, y = datasets.load("mnist", "train")
    x_test, y_test = datasets.load("mnist", "test", limit=args.eval_size)
    # Every model is trained before any is evaluated: the budgets are wall-clock time, so the evaluations
    # (long, and fine to share the machine with) never eat into a later model's training.
    trained, teacher = {}, None
    for name in ["plain", *args.defenses]:
        path, run_id_file = out / f"{name}.keras", out / f"{name}.run_id"
        if path.exists() and run_id_file.exists():
            trained[name] = keras.models.load_model(path).base_model
        else:
            robust, training = train(name, args, x, y, teacher)
            robust.save(path)
            run_id_file.write_text(uuid.uuid4().hex)
            store.bind(name, run_id_file.read_text())  # figures of an older model of the same name go
            store.put(f"{name}/training", training)
            trained[name] = robust.base_model
            print(name, training, flush=True)
        if name == "plain":
            teacher = trained[name]
    rows = []
    for name, base in trained.items():
        table = store.get(f"{name}/table", lambda: evaluate_robustness(
            base, (x_test, y_test), pgd_table(args.eps), progress=False).accuracy)
        training = store.data.get(f"{name}/training", {"seconds": "n/a", "steps": "n/a"})
        row = [name, training["seconds"], training["steps"], *(percent(v, 1) for v in table.values())]
        columns = list(table)
        if args.suite == "autoattack":
            suite = suite_stage(store, name, base, x_test, y_test, args.eps, out / name / "evaluation")
            row += [percent(suite["accuracy"]["worst case"], 1), ", ".join(suite["raised"]) or "none"]
            columns += ["AutoAttack-style worst case", "audit flags"]
        rows.append(row)
        print(name, row, flush=True)
    text = (f"Command: `python {' '.join(sys.argv)}`\n\n"
            + markdown_table(["defence", "train s", "steps", *columns], rows))
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
