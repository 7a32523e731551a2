"""Command line: `keras-attdef train ...`, `keras-attdef evaluate ...` and `keras-attdef certify ...`.

`scripts/train_mnist.py` is `keras-attdef train` with MNIST defaults. Runs offline by default: data
comes from `--data-dir` / `$KERAS_ATTDEF_DATA`, prepared tfds data, or the bundled MNIST sample.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path


def _defense_kwargs(args) -> dict:
    kwargs = {}
    if args.defense in ("madry", "alp", "trades"):
        kwargs.update(eps=args.eps, steps=args.attack_steps,
                      step_size=args.step_size or 2.5 * args.eps / args.attack_steps)
    elif args.defense == "fast":
        kwargs.update(eps=args.eps)
        if args.step_size:
            kwargs["step_size"] = args.step_size
    return kwargs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-attdef", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a (robust) classifier and print its robustness table")
    train.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"])
    train.add_argument("--model", default=None, help="lenet | cifarnet | small_resnet (default by dataset)")
    train.add_argument("--defense", default="madry", help="plain | madry | fast | alp | trades")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--eps", type=float, default=0.3, help="training and evaluation Linf budget")
    train.add_argument("--attack-steps", type=int, default=7, help="PGD steps for madry / alp / trades")
    train.add_argument("--step-size", type=float, default=None, help="attack step (default 2.5 eps / steps)")
    train.add_argument("--warmup-epochs", type=float, default=1.0,
                       help="epochs over which eps ramps linearly from 0 to --eps (0: none)")
    train.add_argument("--train-limit", type=int, default=None, help="use only this many training images")
    train.add_argument("--eval-size", type=int, default=1000, help="test images for the robustness table")
    train.add_argument("--data-dir", default=None, help="folder with <dataset>.npz (default $KERAS_ATTDEF_DATA)")
    train.add_argument("--download", action="store_true", help="let tensorflow_datasets download the data")
    train.add_argument("--out", default="runs/train", help="output folder (model, table, checkpoints)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--jit", action="store_true", help="compile with XLA (for GPUs; slower on CPU)")
    train.add_argument("--verbose", type=int, default=2)
    evaluate = sub.add_parser("evaluate", help="robustness table of a saved .keras model")
    evaluate.add_argument("model_path")
    evaluate.add_argument("--dataset", default="mnist")
    evaluate.add_argument("--eps", type=float, default=0.3)
    evaluate.add_argument("--eval-size", type=int, default=1000)
    evaluate.add_argument("--data-dir", default=None)
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
    return parser


def _model_for(dataset: str, name: str | None, input_shape):
    from keras_attdef import models

    name = name or ("cifarnet" if dataset == "cifar10" else "lenet")
    builders = {"lenet": models.lenet, "cifarnet": models.cifarnet, "small_resnet": models.small_resnet}
    if name not in builders:
        raise SystemExit(f"Unknown model {name!r}; choose one of {sorted(builders)}.")
    return builders[name](input_shape=input_shape)


def train(args) -> dict:
    import keras

    from keras_attdef import RobustModel, datasets, defenses
    from keras_attdef.evaluation import default_attacks, evaluate_robustness

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = datasets.load(args.dataset, "train", args.data_dir, args.download, args.train_limit)
    x_test, y_test = datasets.load(args.dataset, "test", args.data_dir, args.download, args.eval_size)
    print(f"data: {len(x_train)} training and {len(x_test)} test images of shape {x_train.shape[1:]}")
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    kwargs = _defense_kwargs(args)
    if args.defense != "plain":
        kwargs["warmup_steps"] = int(args.warmup_epochs * steps_per_epoch)
    defense = defenses.get(args.defense, **kwargs)
    print(f"defence: {defense}")
    robust = RobustModel(_model_for(args.dataset, args.model, x_train.shape[1:]), defense=defense)
    robust.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"], jit_compile=args.jit)
    train_ds = datasets.as_dataset(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),  # a killed run resumes from the last epoch
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    start = time.time()
    robust.fit(train_ds, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose, shuffle=False)
    train_seconds = time.time() - start
    robust.save(out / "model.keras")
    report = evaluate_robustness(robust, (x_test, y_test), default_attacks(args.eps))
    table = report.to_markdown(f"{args.dataset} {args.defense}, {args.epochs} epochs ({train_seconds:.0f} s)")
    print(table)
    (out / "robustness.md").write_text(table + "\n")
    result = {"defense": args.defense, "train_seconds": train_seconds, "accuracy": report.accuracy,
              "command": " ".join(sys.argv)}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def evaluate(args) -> dict:
    import keras

    from keras_attdef import datasets
    from keras_attdef.evaluation import default_attacks, evaluate_robustness

    model = keras.models.load_model(args.model_path)
    x, y = datasets.load(args.dataset, "test", args.data_dir, False, args.eval_size)
    report = evaluate_robustness(model, (x, y), default_attacks(args.eps))
    print(report.to_markdown(args.model_path))
    return report.accuracy


def certify(args) -> dict:
    from keras_attdef.certify import experiment

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


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    {"train": train, "evaluate": evaluate, "certify": certify}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
