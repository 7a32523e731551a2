#!/usr/bin/env python
"""Wall time for a defence to reach a robustness target on MNIST (LeNet, eps 0.3), on this machine.

    python benchmarks/time_to_robustness.py --defense fast --max-minutes 30 --out runs/ttr_fast
    python benchmarks/time_to_robustness.py --defense madry --model small_lenet --attack-steps 3 \
        --max-minutes 4 --autoattack --out runs/ttr_small   # the quick recipe (issue 11, item 4)

Trains epoch by epoch (eps ramped linearly over --warmup-epochs) and after each epoch measures clean
accuracy on the 10,000 test digits and, once clean >= the target, PGD-100 (step 0.01, random start) on
the first --pgd-points test digits (also after every epoch once the learning rate has dropped). The
clock counts training only; evaluation time is reported apart. Stops at the target or before an epoch
that would end past the time limit; the learning rate drops 10x after --decay-at of the budget.
State is saved every epoch, so a stopped run resumes. With --autoattack, the final model is also
evaluated with the standard AutoAttack-style cascade on the same points (not counted in the clock).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attdef import AttackSpec, RobustModel, datasets, evaluate_robustness, models  # noqa: E402
from keras_attdef.callbacks import CatastrophicOverfittingMonitor  # noqa: E402
from keras_attdef.defenses import PRESETS  # noqa: E402
from keras_attdef.evaluation.autoattack import autoattack  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defense", default="fast", choices=sorted(set(PRESETS) - {"plain", "certified", "atat"}))
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--attack-steps", type=int, default=7, help="PGD steps for madry")
    parser.add_argument("--step-size", type=float, default=None, help="PGD step (default 2.5 eps / steps)")
    parser.add_argument("--model", default="lenet", choices=["lenet", "small_lenet"])
    parser.add_argument("--autoattack", action="store_true",
                        help="evaluate the final model with the standard AutoAttack-style cascade too")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--decay-at", type=float, default=0.7,
                        help="fraction of the time budget after which the learning rate drops 10x")
    parser.add_argument("--clean-target", type=float, default=0.985)
    parser.add_argument("--pgd-target", type=float, default=0.89)
    parser.add_argument("--pgd-points", type=int, default=1000)
    parser.add_argument("--out", default="runs/time_to_robustness")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path, model_path = out / "state.json", out / "model.keras"
    x, y = datasets.load("mnist", "train")
    x_test, y_test = datasets.load("mnist", "test")
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    if state_path.exists() and model_path.exists():
        state = json.loads(state_path.read_text())
        robust = keras.models.load_model(model_path)
        print(f"resuming after epoch {state['epoch']} ({state['train_seconds']:.0f} s of training)")
    else:
        keras.utils.set_random_seed(args.seed)
        warmup = int(args.warmup_epochs * steps_per_epoch)
        defense = PRESETS[args.defense].from_options(eps=args.eps, steps=args.attack_steps, warmup_steps=warmup,
                                                     step_size=args.step_size)
        robust = RobustModel(getattr(models, args.model)(), defense=defense, eval_attack=None)
        robust.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"])
        state = {"epoch": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "history": [], "args": vars(args)}
    train_ds = datasets.as_dataset(x, y, args.batch_size, shuffle=True, seed=args.seed)
    pgd100 = {"PGD-100": AttackSpec("pgd", eps=args.eps, step_size=0.01, steps=100)}
    reached = False
    budget = 60 * args.max_minutes
    monitor = CatastrophicOverfittingMonitor(x_test[-256:], y_test[-256:], eps=args.eps)
    monitor.set_model(robust)
    while state["epoch"] < args.max_epochs:
        last_epoch = state["history"][-1]["epoch_seconds"] if state["history"] else 0.0
        if state["train_seconds"] + last_epoch > budget:
            break  # the next epoch would end past the budget
        if state["train_seconds"] >= args.decay_at * budget:
            robust.optimizer.learning_rate.assign(args.lr / 10)
        start = time.perf_counter()
        logs = robust.fit(train_ds, epochs=1, verbose=0, shuffle=False).history
        epoch_seconds = time.perf_counter() - start
        state["train_seconds"] += epoch_seconds
        state["epoch"] += 1
        start = time.perf_counter()
        clean = float(np.mean(np.argmax(robust.predict(x_test, batch_size=1000, verbose=0), -1) == y_test))
        row = {"epoch": state["epoch"], "train_seconds": round(state["train_seconds"], 1),
               "epoch_seconds": round(epoch_seconds, 1),
               "lr": float(keras.ops.convert_to_numpy(robust.optimizer.learning_rate)), "clean": clean}
        if "adv_accuracy" in logs:  # near 100% on its own attack while PGD-100 is ~0: catastrophic overfitting
            row["train_adv_accuracy"] = round(float(logs["adv_accuracy"][-1]), 4)
        checks = {}  # FGSM and PGD-10 on the last 256 test digits (disjoint from the evaluated ones); warns
        monitor.on_epoch_end(state["epoch"] - 1, checks)
        row.update({name: round(value, 4) for name, value in checks.items()})
        if clean >= args.clean_target or state["train_seconds"] >= args.decay_at * budget:
            report = evaluate_robustness(robust, (x_test[: args.pgd_points], y_test[: args.pgd_points]), pgd100,
                                         batch_size=500, progress=False)
            row["pgd100"] = report.accuracy["PGD-100"]
            reached = clean >= args.clean_target and row["pgd100"] >= args.pgd_target
        state["eval_seconds"] += time.perf_counter() - start
        state["history"].append(row)
        print(json.dumps(row), flush=True)
        robust.save(model_path)
        state_path.write_text(json.dumps(state, indent=2))
        if reached:
            break
    best = state["history"][-1]
    if args.autoattack and "autoattack" not in state:
        start = time.perf_counter()
        result = autoattack(robust, x_test[: args.pgd_points], y_test[: args.pgd_points], args.eps, seed=args.seed)
        state["autoattack"] = {"accuracy": float(result.accuracy["robust"]), "cascade": result.accuracy,
                               "seconds": round(time.perf_counter() - start, 1)}
        state_path.write_text(json.dumps(state, indent=2))
    if "autoattack" in state:
        print(f"AutoAttack-style (standard) accuracy of the final model: {state['autoattack']['accuracy']:.1%} "
              f"({state['autoattack']['seconds']:.0f} s)")
    verdict = "reached" if reached else "NOT reached"
    print(f"\n{args.defense}: target (clean >= {args.clean_target}, PGD-100 >= {args.pgd_target}) {verdict} "
          f"after {state['epoch']} epochs, {state['train_seconds']:.0f} s of training "
          f"(+{state['eval_seconds']:.0f} s evaluation); last: {best}")


if __name__ == "__main__":
    main()
