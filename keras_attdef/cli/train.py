"""`keras-attdef train`: train a classifier with a defence preset; its headline is an AutoAttack-style figure."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from keras_attdef.cli.common import add_data_flags
from keras_attdef.defenses.presets import PRESETS
from keras_attdef.evaluation.suites import VERSIONS
from keras_attdef.models import REGISTRY as MODELS

# Common preset options (defenses.presets.OPTIONS) and the flags that set them.
_FLAGS = {"eps": "--eps", "steps": "--attack-steps", "step_size": "--step-size", "warmup_steps": "--warmup-epochs",
          "teacher": "--teacher"}
DEFAULT_ATTACK_STEPS = 7


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train a (robust) classifier and print its AutoAttack-style robustness")
    add_data_flags(train)
    train.add_argument("--model", default=None, choices=sorted(MODELS),
                       help="architecture (default: cifarnet for cifar10, else lenet; the preset's own if it needs one)")
    train.add_argument("--defense", default="madry", choices=sorted(PRESETS),
                       help="; ".join(f"{name}: {p.summary}" for name, p in sorted(PRESETS.items())))
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--lr-drop-epochs", type=int, default=0,
                       help="train the last N epochs at a tenth of --lr (the main job: 1)")
    train.add_argument("--eps", type=float, default=0.3,
                       help="training and evaluation Linf budget (certified: the box radius)")
    train.add_argument("--train-eps", type=float, default=None,
                       help="training budget when it differs from --eps (the evaluation's): e.g. 0.35 to train past 0.3")
    train.add_argument("--attack-steps", type=int, default=None,
                       help=f"PGD steps of the presets that run PGD (default {DEFAULT_ATTACK_STEPS})")
    train.add_argument("--step-size", type=float, default=None,
                       help="attack step (PGD presets: default 2.5 eps / steps; fast: 1.25 eps)")
    train.add_argument("--warmup-epochs", type=float, default=None,
                       help="epochs over which eps ramps linearly from 0 to --eps (default 1; 0: none)")
    train.add_argument("--teacher", default=None, help="atat: a trained model (.keras) whose attention is transferred")
    train.add_argument("--train-limit", type=int, default=None, help="use only this many training images")
    train.add_argument("--eval-size", type=int, default=1000,
                       help="first N test images for the AutoAttack-style headline (0: no evaluation)")
    train.add_argument("--eval-version", default="fast", choices=list(VERSIONS),
                       help="AutoAttack-style cascade of the headline: fast (APGD-CE, APGD-T with 3 targets) or "
                            "standard (adds 9 targets, FAB-T and Square; `keras-attdef evaluate` for the full report)")
    train.add_argument("--pgd-table", action="store_true",
                       help="also print the PGD-family table (FGSM, StepLL, Iter-LL, PGD-20, PGD-40)")
    train.add_argument("--download", action="store_true", help="let tensorflow_datasets download the data")
    train.add_argument("--out", default="runs/train", help="output folder (model, result, checkpoints)")
    train.add_argument("--publish", default=None, metavar="RESULTS_DIR",
                       help="also write the result record and the model's weights (with a checksum) under "
                            "RESULTS_DIR/<experiment>/, where `keras-attdef report` reads them")
    train.add_argument("--experiment", default="train", help="the experiment name of the result record")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--multi-worker", action="store_true",
                       help="one of several workers: run the same command on every machine, each with its own "
                            "TF_CONFIG (README, 'Training on several machines'); --batch-size is the global batch, "
                            "worker 0 saves and evaluates")
    train.add_argument("--jit", action="store_true", help="compile with XLA (for GPUs; slower on CPU)")
    train.add_argument("--verbose", type=int, default=2)
    train.set_defaults(func=run)


def defense_options(args, preset, steps_per_epoch: int) -> dict:
    """The common preset options from the command line; a flag the preset does not take is an error.

    `--eps` is always allowed (it is also the evaluation budget). PGD presets default to
    `--attack-steps 7` (with step `2.5 * eps / steps`); every preset with a budget ramps it over one epoch.
    """
    given = {"steps": args.attack_steps, "step_size": args.step_size, "teacher": args.teacher,
             "warmup_steps": None if args.warmup_epochs is None else int(args.warmup_epochs * steps_per_epoch)}
    refused = [_FLAGS[name] for name, value in given.items() if value is not None and name not in preset.options]
    if refused:
        raise SystemExit(f"--defense {preset.name} does not take {', '.join(refused)}; it takes "
                         f"{', '.join(_FLAGS[o] for o in preset.options) or 'no attack options'}.")
    if "teacher" in preset.options:
        if args.teacher is None:
            raise SystemExit(f"--defense {preset.name} needs --teacher PATH.keras (a trained model).")
        from keras_attdef.cli.common import load_classifier

        given["teacher"] = load_classifier(args.teacher)
    defaults = {"steps": DEFAULT_ATTACK_STEPS, "warmup_steps": steps_per_epoch}
    eps = args.eps if args.train_eps is None else args.train_eps
    return {"eps": eps, **defaults, **{k: v for k, v in given.items() if v is not None}}


def step_schedule(lr: float, drop_epoch: int):
    """Learning rate `lr` before epoch `drop_epoch` (0-based), `lr / 10` from it on."""
    return lambda epoch, _current=None: lr * (0.1 if epoch >= drop_epoch else 1.0)


def _fit(args, out: Path, strategy):
    """Builds, trains and saves the model; returns `(robust, defense, architecture, train_seconds)`."""
    import keras

    from keras_attdef import RobustModel, datasets, distribute, models
    from keras_attdef.callbacks import BackupAndRestore

    x_train, y_train = datasets.load(args.dataset, "train", args.data_dir, args.download, args.train_limit)
    print(f"data: {len(x_train)} training images of shape {x_train.shape[1:]}")
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    preset = PRESETS[args.defense]
    defense = preset.from_options(**defense_options(args, preset, steps_per_epoch))
    print(f"defence: {defense}")
    architecture = args.model or preset.model or ("cifarnet" if args.dataset == "cifar10" else "lenet")
    with strategy.scope():
        robust = RobustModel(models.get(architecture)(input_shape=x_train.shape[1:]), defense=defense)
        robust.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"], jit_compile=args.jit)
    index = distribute.worker_index(strategy)
    log = out / ("history.csv" if index == 0 else f"history-worker-{index}.csv")
    callbacks = [BackupAndRestore(str(out / "backup")),  # a killed run (or worker) resumes from the last epoch
                 keras.callbacks.CSVLogger(str(log), append=True)]
    if args.lr_drop_epochs:
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(step_schedule(args.lr, args.epochs - args.lr_drop_epochs)))
    train_ds = datasets.as_dataset(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed)
    start = time.time()
    robust.fit(train_ds, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose, shuffle=False)
    train_seconds = time.time() - start
    if index == 0:  # the weights are the same on every worker: one writes them
        robust.save(out / "model.keras")
    return robust, defense, architecture, train_seconds


def _evaluate(args, robust, out: Path) -> dict:
    """The AutoAttack-style headline (and, on request, the PGD-family table) on the first test images."""
    from keras_attdef import datasets
    from keras_attdef.evaluation import autoattack, evaluate_robustness, pgd_table

    x_test, y_test = datasets.load(args.dataset, "test", args.data_dir, args.download, args.eval_size)
    start = time.time()
    cascade = autoattack(robust, x_test, y_test, args.eps, version=args.eval_version, seed=args.seed)
    seconds = time.time() - start
    accuracy = {"clean": cascade.accuracy["clean"],
                **{k.removeprefix("after "): v for k, v in cascade.accuracy.items() if k.startswith("after ")},
                "worst case": cascade.accuracy["robust"]}
    print(f"\nHeadline: {cascade.label}: {100 * accuracy['worst case']:.1f}% robust, clean {100 * accuracy['clean']:.1f}%,"
          f" on the first {len(y_test)} test images ({seconds:.0f} s).\n(cumulative: "
          + ", ".join(f"after {k} {100 * v:.1f}%" for k, v in accuracy.items() if k not in ("clean", "worst case"))
          + f"). The full report with the masking audit: keras-attdef evaluate {out / 'model.keras'} --dataset "
          f"{args.dataset} --eps {args.eps:g} --suite autoattack")
    if args.pgd_table:
        table = evaluate_robustness(robust, (x_test, y_test), pgd_table(args.eps)).to_markdown(
            "PGD family only (overstates robustness: quote the headline)")
        print(table)
        (out / "pgd_table.md").write_text(table + "\n")
    picture = _attention_picture(robust.base_model, x_test[:8], y_test[:8], args.eps, out)
    return {"accuracy": accuracy, "label": cascade.label, "n": len(y_test), "eval_seconds": seconds, "picture": picture}


def _attention_picture(model, x, y, eps: float, out: Path) -> str | None:
    """`attention.png`: clean and PGD-20 images with their Grad-CAM maps (None for models without a conv layer)."""
    from keras_attdef.analysis import attention_grid
    from keras_attdef.attacks.spec import AttackSpec

    try:
        path = attention_grid(model, x, y, AttackSpec("pgd", eps=eps, steps=20), out / "attention.png")
    except ValueError as err:  # e.g. the certified dense net: no feature map to explain
        print(f"no attention picture: {err}")
        return None
    print(f"attention of clean and adversarial images: {path}")
    return str(path)


def run(args) -> dict:
    """Trains, evaluates and writes `result.json` (a result record when evaluated; see `keras_attdef.results`)."""
    import keras
    import tensorflow as tf

    from keras_attdef import distribute

    from keras_attdef.experiments.publish import publish_training, training_record

    if not 0 <= args.lr_drop_epochs <= args.epochs:
        raise SystemExit(f"--lr-drop-epochs must be between 0 and --epochs ({args.epochs}); got {args.lr_drop_epochs}.")
    # The strategy first: a multi-worker one must exist before any other TensorFlow operation.
    strategy = tf.distribute.get_strategy()
    if args.multi_worker:
        try:
            strategy = distribute.multi_worker_strategy(timeout_seconds=600)
        except ValueError as error:
            raise SystemExit(str(error)) from None
    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    robust, defense, architecture, train_seconds = _fit(args, out, strategy)
    if distribute.worker_index(strategy) != 0:
        print(f"worker {distribute.worker_index(strategy)}: trained; worker 0 saves and evaluates.")
        return {"train_seconds": train_seconds}
    if args.multi_worker:  # evaluate the saved model outside the strategy: the other workers have left
        robust = keras.models.load_model(out / "model.keras")
    if not args.eval_size:
        from keras_attdef.defenses import serialize

        summary = {"defense": args.defense, "config": serialize(defense), "architecture": architecture,
                   "train_seconds": train_seconds, "command": args.command_line}
        (out / "result.json").write_text(json.dumps(summary, indent=2))
        return summary
    evaluation = _evaluate(args, robust, out)
    record = training_record(args, defense, architecture, train_seconds, evaluation, args.command_line)
    (out / "result.json").write_text(json.dumps(record, indent=2) + "\n")
    if args.publish:
        for path in publish_training(record, robust.base_model, args.publish):
            print(f"published: {path}")
    return record
