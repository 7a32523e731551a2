"""`keras-attdef evaluate` (the robustness report of a saved model) and `attack` (adversarial examples to .npz)."""
from __future__ import annotations

import json
from pathlib import Path

from keras_attdef.attacks.spec import registered as registered_attacks
from keras_attdef.cli.common import add_data_flags, load_classifier
from keras_attdef.evaluation.suites import SUITES


def add_parsers(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="robustness report of a saved .keras model (Markdown, JSON, PNG)")
    evaluate.add_argument("model_path")
    add_data_flags(evaluate)
    evaluate.add_argument("--eps", type=float, default=0.3)
    evaluate.add_argument("--norm", default="linf", choices=["linf", "l2"])
    evaluate.add_argument("--suite", default="autoattack", choices=list(SUITES),
                          help="autoattack: FGSM, PGD-20/100 and the AutoAttack-style parts with their worst case; "
                               "fast: a cheaper, weaker variant; quick: a smoke test")
    evaluate.add_argument("--source", default=None, help="a second .keras model: adds black-box transfer from it")
    evaluate.add_argument("--eval-size", type=int, default=1000, help="first N test images")
    evaluate.add_argument("--batch-size", type=int, default=500)
    evaluate.add_argument("--out", default=None, help="folder for report.md, report.json and the PNG plots")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--attack-precision", default="float32", choices=["float32", "bfloat16"],
                          help="bfloat16: the attacks run on a bfloat16 copy, every verdict on the float32 model: "
                               "about 1.6x faster where the CPU or GPU has bfloat16 instructions, but weaker (0.6 "
                               "points on the main job's model); the report says so. Cite float32 figures")
    evaluate.add_argument("--shard", default=None, metavar="I/N",
                          help="evaluate only the I-th of N slices of the points (from 0) and write a partial "
                               "report to --out; `keras-attdef merge` joins the N partials into the full report")
    _add_publish_flags(evaluate)
    evaluate.set_defaults(func=evaluate_command)
    merge = sub.add_parser("merge", help="join the partial reports of `evaluate --shard I/N` into one report")
    merge.add_argument("partials", nargs="+", help="the partial.json files, one per shard")
    merge.add_argument("--out", default=None, help="folder for report.md, report.json and the PNG plots")
    merge.add_argument("--model", default=None, metavar="MODEL.keras",
                       help="the evaluated model: checked against the partials' weights and linked by the published "
                            "record")
    merge.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10"],
                       help="the dataset the shards evaluated (for the published record)")
    _add_publish_flags(merge)
    merge.set_defaults(func=merge_command)
    attack = sub.add_parser("attack", help="adversarial examples of a saved .keras model, written to an .npz")
    attack.add_argument("model_path")
    attack.add_argument("--attack", default="apgd_ce", choices=registered_attacks(), help="a registered attack")
    attack.add_argument("--eps", type=float, default=0.3)
    attack.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="another argument of the attack (repeatable), e.g. --param steps=50 --param norm=l2")
    add_data_flags(attack)
    attack.add_argument("--eval-size", type=int, default=1000, help="first N test images")
    attack.add_argument("--batch-size", type=int, default=500)
    attack.add_argument("--out", default="adversarial.npz")
    attack.set_defaults(func=attack_command)


def _add_publish_flags(parser) -> None:
    parser.add_argument("--publish", default=None, metavar="RESULTS_DIR",
                        help="also write the report as a result record (with its provenance) under "
                             "RESULTS_DIR/<experiment>/, where `keras-attdef report` reads it")
    parser.add_argument("--experiment", default="evaluation", help="the experiment name of the result record")
    parser.add_argument("--name", default=None, help="the record's model name (default: the model file's stem)")


def _publish(args, report, model_path, **provenance_extra) -> None:
    from keras_attdef.experiments.publish import evaluation_record, publish_evaluation

    if not args.publish:
        return
    if args.name is None and model_path is None:
        raise SystemExit("--publish needs the record's model name: give --name or --model.")
    name = args.name or Path(model_path).stem
    record = evaluation_record(report, args.experiment, name, args.dataset, args.command_line, args.seed, model_path,
                               **provenance_extra)
    for path in publish_evaluation(record, args.publish):
        print(f"published: {path}")


def evaluate_command(args) -> dict:
    from keras_attdef import datasets
    from keras_attdef.evaluation import evaluate as evaluate_model

    model = load_classifier(args.model_path)
    x, y = datasets.load(args.dataset, "test", args.data_dir, False, args.eval_size)
    if args.shard:
        return _evaluate_shard(args, model, x, y)
    source = load_classifier(args.source) if args.source else None
    report = evaluate_model(model, x, y, args.eps, args.norm, args.suite, source_model=source,
                            batch_size=args.batch_size, seed=args.seed, name=Path(args.model_path).name,
                            precision=args.attack_precision)
    _show(report, args.out)
    _publish(args, report, args.model_path)
    return report.to_dict()


def _show(report, out) -> None:
    print(report.to_markdown())
    if out:
        for kind, path in report.save(out).items():
            print(f"{kind}: {path}")


def _evaluate_shard(args, model, x, y) -> dict:
    from keras_attdef.evaluation import shards

    if args.source:
        raise SystemExit("--source (transfer) is not split into shards: run it unsplit.")
    if not args.out:
        raise SystemExit(f"--shard {args.shard} writes a partial report: give --out (a folder per shard).")
    try:
        partial = shards.evaluate_shard(model, x, y, args.eps, args.shard, label=Path(args.model_path).name,
                                        norm=args.norm, suite=args.suite, batch_size=args.batch_size, seed=args.seed,
                                        precision=args.attack_precision)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    path = shards.save_partial(partial, args.out)
    print(f"shard {args.shard}: points {partial['start']}-{partial['stop']} of {partial['num_points']} in "
          f"{partial['seconds']:.0f} s; wrote {path}. Merge all {partial['shards']} with `keras-attdef merge`.")
    return partial


def merge_command(args) -> dict:
    from keras_attdef.evaluation import shards

    try:
        report = shards.merge(args.partials)
        partials = [shards.load_partial(path) for path in args.partials]
        first = partials[0]
        if args.model and shards.model_fingerprint(load_classifier(args.model)) != first["model"]:
            raise ValueError(f"{args.model} is not the model the partials measured: its weights differ.")
    except ValueError as error:
        raise SystemExit(str(error)) from None
    _show(report, args.out)
    args.seed = first["seed"]
    # the commits whose code measured the shards (partials written before 2026-12-08 do not say)
    _publish(args, report, args.model, shard_commits=sorted({p["commit"] for p in partials if "commit" in p}))
    return report.to_dict()


def parse_value(text: str):
    """`"3"` -> 3, `"0.5"` -> 0.5, `"true"` -> True, `"none"` -> None, anything else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def attack_command(args) -> dict:
    import numpy as np

    from keras_attdef import AttackSpec, datasets
    from keras_attdef.inputs import check_inputs
    from keras_attdef.models import predict_labels
    from keras_attdef.evaluation.robustness import adversarial_examples

    params = {}
    for item in args.param:
        if "=" not in item:
            raise SystemExit(f"--param takes KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        params[key] = parse_value(value)
    spec = AttackSpec(args.attack, eps=args.eps, **params)
    model = load_classifier(args.model_path)
    x, y = check_inputs(model, *datasets.load(args.dataset, "test", args.data_dir, False, args.eval_size))
    adversarial = adversarial_examples(model, x, y, spec, args.batch_size, progress=True)
    predictions = predict_labels(model, adversarial, args.batch_size)
    np.savez_compressed(args.out, x=x, y=y, x_adv=adversarial, predictions=predictions,
                        attack=json.dumps(spec.get_config()))
    accuracy = float(np.mean(predictions == y))
    print(f"{spec}: accuracy {100 * accuracy:.2f}% on {len(y)} images; wrote {args.out} "
          "(x, y, x_adv, predictions, attack)")
    return {"accuracy": accuracy, "path": args.out}
