"""Command line: `keras-attdef train | evaluate | attack | certify ...`.

`scripts/train_mnist.py` is `keras-attdef train` with MNIST defaults. Runs offline by default: data
comes from `--data-dir` / `$KERAS_ATTDEF_DATA`, prepared tfds data, or the MNIST copy bundled with the package.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from keras_attdef.attacks.spec import registered as registered_attacks
from keras_attdef.defenses.presets import PRESETS
from keras_attdef.evaluation.report import SUITES


# Common preset options (defenses.presets.OPTIONS) and the flags that set them.
_FLAGS = {"eps": "--eps", "steps": "--attack-steps", "step_size": "--step-size", "warmup_steps": "--warmup-epochs",
          "teacher": "--teacher"}
DEFAULT_ATTACK_STEPS = 7


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
            raise SystemExit(f"--defense {preset.name} needs --teacher PATH.keras (a plainly trained model).")
        import keras

        teacher = keras.models.load_model(args.teacher)
        given["teacher"] = getattr(teacher, "base_model", teacher)
    defaults = {"steps": DEFAULT_ATTACK_STEPS, "warmup_steps": steps_per_epoch}
    return {"eps": args.eps, **defaults, **{k: v for k, v in given.items() if v is not None}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-attdef", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a (robust) classifier and print its robustness table")
    train.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"])
    train.add_argument("--model", default=None,
                       help="lenet | small_lenet | cifarnet | small_resnet | two_layer_dense "
                            "(default by dataset and defence)")
    train.add_argument("--defense", default="madry", choices=sorted(PRESETS),
                       help="; ".join(f"{name}: {p.summary}" for name, p in sorted(PRESETS.items())))
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--lr-drop-epochs", type=int, default=0,
                       help="train the last N epochs at a tenth of --lr (the main job: 1)")
    train.add_argument("--eps", type=float, default=0.3,
                       help="training and evaluation Linf budget (certified: the box radius)")
    train.add_argument("--attack-steps", type=int, default=None,
                       help=f"PGD steps of the presets that run PGD (default {DEFAULT_ATTACK_STEPS})")
    train.add_argument("--step-size", type=float, default=None,
                       help="attack step (PGD presets: default 2.5 eps / steps; fast: 1.25 eps)")
    train.add_argument("--warmup-epochs", type=float, default=None,
                       help="epochs over which eps ramps linearly from 0 to --eps (default 1; 0: none)")
    train.add_argument("--teacher", default=None, help="atat: a plainly trained model (.keras)")
    train.add_argument("--train-limit", type=int, default=None, help="use only this many training images")
    train.add_argument("--eval-size", type=int, default=1000,
                       help="test images for the robustness table (0: no table)")
    train.add_argument("--data-dir", default=None, help="folder with <dataset>.npz (default $KERAS_ATTDEF_DATA)")
    train.add_argument("--download", action="store_true", help="let tensorflow_datasets download the data")
    train.add_argument("--out", default="runs/train", help="output folder (model, table, checkpoints)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--jit", action="store_true", help="compile with XLA (for GPUs; slower on CPU)")
    train.add_argument("--verbose", type=int, default=2)
    evaluate = sub.add_parser("evaluate", help="robustness report of a saved .keras model (Markdown, JSON, PNG)")
    evaluate.add_argument("model_path")
    evaluate.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"])
    evaluate.add_argument("--eps", type=float, default=0.3)
    evaluate.add_argument("--norm", default="linf", choices=["linf", "l2"])
    evaluate.add_argument("--suite", default="autoattack", choices=list(SUITES),
                          help="autoattack: FGSM, PGD-20/100 and the AutoAttack-style parts with their worst case; "
                               "fast: a cheaper, weaker variant; quick: a smoke test")
    evaluate.add_argument("--source", default=None, help="a second .keras model: adds black-box transfer from it")
    evaluate.add_argument("--eval-size", type=int, default=1000, help="first N test images")
    evaluate.add_argument("--batch-size", type=int, default=500)
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--out", default=None, help="folder for report.md, report.json and the PNG plots")
    evaluate.add_argument("--seed", type=int, default=0)
    attack = sub.add_parser("attack", help="adversarial examples of a saved .keras model, written to an .npz")
    attack.add_argument("model_path")
    attack.add_argument("--attack", default="apgd_ce", choices=registered_attacks(), help="a registered attack")
    attack.add_argument("--eps", type=float, default=0.3)
    attack.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="another argument of the attack (repeatable), e.g. --param steps=50 --param norm=l2")
    attack.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"])
    attack.add_argument("--eval-size", type=int, default=1000, help="first N test images")
    attack.add_argument("--batch-size", type=int, default=500)
    attack.add_argument("--data-dir", default=None)
    attack.add_argument("--out", default="adversarial.npz")
    cert = sub.add_parser("certify", help="train plain and certified 784-h-10 nets, attack with stAdv, certify")
    cert.add_argument("--threat", default="flow", choices=["flow", "linf"],
                      help="flow: stAdv flow budgets (the thesis); linf: Raghunathan et al.'s eps box")
    cert.add_argument("--hidden", type=int, default=None, help="hidden units (default 200 flow, 500 linf)")
    cert.add_argument("--epochs", type=int, default=10)
    cert.add_argument("--lr", type=float, default=1e-3)
    cert.add_argument("--weight", type=float, default=1.0, help="weight of the certified loss")
    cert.add_argument("--train-budget", type=float, default=0.25, help="flow budget the certified net trains at")
    cert.add_argument("--quantile", type=float, default=0.5,
                      help="per-pixel quantile of the training images' warp-interval radius trained against")
    cert.add_argument("--budgets", default="0.1,0.2,0.25,0.5,1,7,100", help="flow budgets to attack and certify at")
    cert.add_argument("--eps", type=float, default=0.1, help="Linf eps (--threat linf)")
    cert.add_argument("--certify-size", type=int, default=200, help="test digits certified per budget")
    cert.add_argument("--attack-size", type=int, default=500, help="test digits attacked per budget")
    cert.add_argument("--stadv-steps", type=int, default=200)
    cert.add_argument("--sdp-images", type=int, default=0,
                      help="also compare the eigenvalue bound with exact SCS SDPs on this many images")
    cert.add_argument("--sdp-budget", type=float, default=0.5)
    cert.add_argument("--sdp-eps", type=float, default=1e-4,
                      help="SCS tolerance; the optimum is bracketed soundly from both sides whatever it is")
    cert.add_argument("--data-dir", default=None)
    cert.add_argument("--out", default=None, help="output folder (default runs/certify_<threat>)")
    cert.add_argument("--seed", type=int, default=0)
    cert.add_argument("--verbose", type=int, default=2)
    det = sub.add_parser("detect", help="train the LAN detector on a plain classifier and measure it (thesis Tables 1-4)")
    det.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"],
                     help="cifar10: the offline test copy, split into a training and a held-out part")
    det.add_argument("--train-size", type=int, default=None, help="first N training images (default all)")
    det.add_argument("--eval-size", type=int, default=1000)
    det.add_argument("--classifier-epochs", type=int, default=3)
    det.add_argument("--generator-epochs", type=int, default=5)
    det.add_argument("--mask-epochs", type=int, default=5)
    det.add_argument("--beta", type=float, default=1.0, help="eq. 9: weight of the corrupted share")
    det.add_argument("--noise", default="uniform", choices=["uniform", "gaussian", "shuffle"])
    det.add_argument("--squeeze-bits", type=int, default=None,
                     help="round the mask generator's input to 2**N levels (feature squeezing; default off)")
    det.add_argument("--median-size", type=int, default=None,
                     help="median-filter the mask generator's input with an N x N window first (default off)")
    det.add_argument("--mask-attacks", default="",
                     help="comma-separated fgsm,jsma,cw_l2: f2 also trains on the masks of these attacks' examples "
                          "made on the classifier from training images (default none: the thesis's f2)")
    det.add_argument("--mask-attack-size", type=int, default=2000, help="training images attacked per mask attack")
    det.add_argument("--calibrate-pass-rate", type=float, default=None,
                     help="also flag inputs whose score exceeds this quantile of benign training scores "
                          "(e.g. 0.93; default off: the thesis's label rule alone)")
    det.add_argument("--cw-steps", type=int, default=100)
    det.add_argument("--adaptive-steps", type=int, default=100)
    det.add_argument("--data-dir", default=None)
    det.add_argument("--out", default=None, help="output folder (default runs/detect_<dataset>)")
    det.add_argument("--seed", type=int, default=0)
    det.add_argument("--verbose", type=int, default=2)
    return parser


def _model_for(dataset: str, name: str | None, input_shape):
    from keras_attdef import models

    name = name or ("cifarnet" if dataset == "cifar10" else "lenet")
    builders = {"lenet": models.lenet, "small_lenet": models.small_lenet, "cifarnet": models.cifarnet,
                "small_resnet": models.small_resnet, "two_layer_dense": models.two_layer_dense}
    if name not in builders:
        raise SystemExit(f"Unknown model {name!r}; choose one of {sorted(builders)}.")
    return builders[name](input_shape=input_shape)


def train(args) -> dict:
    import keras

    from keras_attdef import RobustModel, datasets, defenses
    from keras_attdef.evaluation import default_attacks, evaluate_robustness

    if not 0 <= args.lr_drop_epochs <= args.epochs:
        raise SystemExit(f"--lr-drop-epochs must be between 0 and --epochs ({args.epochs}); got {args.lr_drop_epochs}.")
    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = datasets.load(args.dataset, "train", args.data_dir, args.download, args.train_limit)
    print(f"data: {len(x_train)} training images of shape {x_train.shape[1:]}")
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    preset = PRESETS[args.defense]
    defense = preset.from_options(**defense_options(args, preset, steps_per_epoch))
    print(f"defence: {defense}")
    model = _model_for(args.dataset, args.model or preset.model, x_train.shape[1:])
    robust = RobustModel(model, defense=defense)
    robust.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"], jit_compile=args.jit)
    train_ds = datasets.as_dataset(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),  # a killed run resumes from the last epoch
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    if args.lr_drop_epochs:
        drop_epoch = args.epochs - args.lr_drop_epochs
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(_step_schedule(args.lr, drop_epoch)))
    start = time.time()
    robust.fit(train_ds, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose, shuffle=False)
    train_seconds = time.time() - start
    robust.save(out / "model.keras")
    result = {"defense": args.defense, "config": defenses.serialize(defense), "train_seconds": train_seconds,
              "accuracy": None, "command": " ".join(sys.argv)}
    if args.eval_size:
        x_test, y_test = datasets.load(args.dataset, "test", args.data_dir, args.download, args.eval_size)
        report = evaluate_robustness(robust, (x_test, y_test), default_attacks(args.eps))
        table = report.to_markdown(f"{args.dataset} {args.defense}, {args.epochs} epochs ({train_seconds:.0f} s)")
        print(table)
        print(f"(PGD figures overstate; the strongest evaluation: keras-attdef evaluate {out / 'model.keras'} "
              f"--dataset {args.dataset} --eps {args.eps} --suite autoattack)")
        (out / "robustness.md").write_text(table + "\n")
        result["accuracy"] = report.accuracy
        result["picture"] = _attention_picture(robust.base_model, x_test[:8], y_test[:8], args.eps, out)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def _step_schedule(lr: float, drop_epoch: int):
    """Learning rate `lr` before epoch `drop_epoch` (0-based), `lr / 10` from it on."""
    return lambda epoch, _current=None: lr * (0.1 if epoch >= drop_epoch else 1.0)


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


def _load_classifier(path):
    import keras

    model = keras.models.load_model(path)
    return getattr(model, "base_model", model)


def evaluate(args) -> dict:
    from keras_attdef import datasets
    from keras_attdef.evaluation import evaluate as evaluate_model

    model = _load_classifier(args.model_path)
    x, y = datasets.load(args.dataset, "test", args.data_dir, False, args.eval_size)
    source = _load_classifier(args.source) if args.source else None
    report = evaluate_model(model, x, y, args.eps, args.norm, args.suite, source_model=source,
                            batch_size=args.batch_size, seed=args.seed, name=Path(args.model_path).name)
    print(report.to_markdown())
    if args.out:
        for kind, path in report.save(args.out).items():
            print(f"{kind}: {path}")
    return report.to_dict()


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def attack(args) -> dict:
    import numpy as np

    from keras_attdef import AttackSpec, datasets
    from keras_attdef.evaluation.inputs import check_inputs, predict_labels
    from keras_attdef.evaluation.robustness import adversarial_examples

    params = {}
    for item in args.param:
        if "=" not in item:
            raise SystemExit(f"--param takes KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        params[key] = _parse_value(value)
    spec = AttackSpec(args.attack, eps=args.eps, **params)
    model = _load_classifier(args.model_path)
    x, y = check_inputs(model, *datasets.load(args.dataset, "test", args.data_dir, False, args.eval_size))
    adversarial = adversarial_examples(model, x, y, spec, args.batch_size, progress=True)
    predictions = predict_labels(model, adversarial, args.batch_size)
    np.savez_compressed(args.out, x=x, y=y, x_adv=adversarial, predictions=predictions,
                        attack=json.dumps(spec.get_config()))
    accuracy = float(np.mean(predictions == y))
    print(f"{spec}: accuracy {100 * accuracy:.2f}% on {len(y)} images; wrote {args.out} "
          "(x, y, x_adv, predictions, attack)")
    return {"accuracy": accuracy, "path": args.out}


def certify(args) -> dict:
    from keras_attdef.experiments import certification as experiment

    out = args.out or f"runs/certify_{args.threat}"
    if args.threat == "linf":
        return experiment.linf_experiment(out, args.hidden or 500, args.eps, args.epochs, args.weight, args.lr,
                                          data_dir=args.data_dir, seed=args.seed, verbose=args.verbose)
    budgets = [float(b) for b in args.budgets.split(",")]
    result = experiment.flow_experiment(out, args.hidden or 200, args.epochs, args.train_budget, budgets,
                                        args.certify_size, args.attack_size, args.stadv_steps, args.weight,
                                        args.lr, args.data_dir, args.seed, args.verbose, args.quantile)
    if args.sdp_images:
        import keras
        import numpy as np

        from keras_attdef import datasets

        x, y = datasets.load("mnist", "test", args.data_dir, limit=args.sdp_images)
        net = keras.models.load_model(Path(out) / "certified.keras").base_model
        rows = experiment.sdp_comparison(net, x, y, args.sdp_budget, args.sdp_images, Path(out) / "sdp.json",
                                         args.sdp_eps)
        ratios = np.array([row["ratio"] for row in rows])
        to_lower = np.array([row["ratio_to_lower"] for row in rows])
        print(f"eigenvalue bound / SDP bound re-checked from SCS's dual over {len(rows)} images (budget "
              f"{args.sdp_budget:g}): max {ratios.max():.4f}, mean {ratios.mean():.4f}; / sound lower bound of "
              f"the SDP (proven limit of eigen / optimum): max {to_lower.max():.4f}, mean {to_lower.mean():.4f}, "
              f"{int(np.sum(to_lower <= 1.05))} of {len(rows)} within 5%; SCS took "
              f"{np.mean([r['sdp_seconds'] for r in rows]):.1f} s per SDP (n = {int(np.mean([r['n'] for r in rows]))}"
              f" on average)")
        result["sdp"] = rows
    return result


def detect(args) -> str:
    from keras_attdef.experiments.detection import detection_experiment

    text = detection_experiment(args.out or f"runs/detect_{args.dataset}", args.dataset, args.train_size,
                                args.eval_size, args.classifier_epochs, args.generator_epochs, args.mask_epochs,
                                args.beta, args.noise, args.squeeze_bits, args.cw_steps, args.adaptive_steps,
                                args.data_dir, args.seed, args.verbose, median_size=args.median_size,
                                mask_attacks=tuple(a for a in args.mask_attacks.split(",") if a),
                                mask_attack_size=args.mask_attack_size,
                                calibrate_pass_rate=args.calibrate_pass_rate)
    print(f"Command: `keras-attdef {' '.join(sys.argv[1:])}`\n\n{text}")
    return text


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    {"train": train, "evaluate": evaluate, "attack": attack, "certify": certify, "detect": detect}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
