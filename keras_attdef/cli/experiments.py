"""Subcommands that run a whole experiment (`certify`, `detect`, `reproduce`, `ablate`) or publish (`report`).

Each calls one experiment function with keyword arguments taken from the flags of the same name
(`call_with_flags`), so a new experiment option is one flag and one parameter, never a positional slot.
"""
from __future__ import annotations

import inspect

from keras_attdef.cli.common import add_data_flags
from keras_attdef.detect.lan import NOISES
from keras_attdef.evaluation.suites import SUITES, VERSIONS


def call_with_flags(function, args, **overrides):
    """Calls `function` with every parsed flag whose name is one of its parameters, then `overrides`."""
    names = inspect.signature(function).parameters
    kwargs = {k: v for k, v in vars(args).items() if k in names}
    return function(**{**kwargs, **overrides})


def add_parsers(sub) -> None:
    for add in (_certify_parser, _detect_parser, _reproduce_parser, _ablate_parser, _report_parser):
        add(sub)


def _certify_parser(sub) -> None:
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
    cert.set_defaults(func=certify)


def certify(args) -> dict:
    from keras_attdef.experiments import certification as experiment

    out = args.out or f"runs/certify_{args.threat}"
    if args.threat == "linf":
        return call_with_flags(experiment.linf_experiment, args, out=out, hidden=args.hidden or 500)
    budgets = [float(b) for b in args.budgets.split(",")]
    result = call_with_flags(experiment.flow_experiment, args, out=out, hidden=args.hidden or 200, budgets=budgets)
    if args.sdp_images:
        result["sdp"] = experiment.sdp_summary(out, args.sdp_images, args.sdp_budget, args.sdp_eps, args.data_dir)
    return result


def _detect_parser(sub) -> None:
    det = sub.add_parser("detect", help="train the LAN detector on a plain classifier and measure it (thesis Tables 1-4)")
    add_data_flags(det, "cifar10: the offline test copy, split into a training and a held-out part")
    det.add_argument("--train-size", type=int, default=None, help="first N training images (default all)")
    det.add_argument("--eval-size", type=int, default=1000)
    det.add_argument("--classifier-epochs", type=int, default=3)
    det.add_argument("--generator-epochs", type=int, default=5)
    det.add_argument("--mask-epochs", type=int, default=5)
    det.add_argument("--beta", type=float, default=1.0, help="eq. 9: weight of the corrupted share")
    det.add_argument("--noise", default="uniform", choices=list(NOISES))
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
    det.add_argument("--out", default=None, help="output folder (default runs/detect_<dataset>)")
    det.add_argument("--seed", type=int, default=0)
    det.add_argument("--verbose", type=int, default=2)
    det.set_defaults(func=detect)


def detect(args) -> str:
    from keras_attdef.experiments.detection import detection_experiment

    text = call_with_flags(detection_experiment, args, out=args.out or f"runs/detect_{args.dataset}",
                           mask_attacks=tuple(a for a in args.mask_attacks.split(",") if a))
    print(f"Command: `{args.command_line}`\n\n{text}")
    return text


def _reproduce_parser(sub) -> None:
    from keras_attdef.defenses.presets import PRESETS
    from keras_attdef.experiments.reproduction import DEFAULT_PRESETS, Protocol

    defaults = Protocol()
    rep = sub.add_parser("reproduce", help="the AAD paper's MNIST table for every preset, with the AutoAttack-style "
                                           "suite, audit and attention IoU (resumable; hours)")
    # the question asked first (does AAD beat madry?) decides the order of a run that takes several sessions
    rep.add_argument("--presets", nargs="+", choices=sorted(set(PRESETS) - {"certified"}), default=list(DEFAULT_PRESETS))
    rep.add_argument("--epochs", type=int, default=defaults.epochs)
    rep.add_argument("--max-minutes", type=float, default=defaults.max_minutes, help="training minutes per preset")
    rep.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs,
                     help="epochs over which eps ramps up (without a ramp madry collapsed; see Protocol)")
    rep.add_argument("--eval-size", type=int, default=defaults.eval_size)
    rep.add_argument("--train-size", type=int, default=None, help="first N training digits (smoke tests)")
    rep.add_argument("--suite", default="autoattack", choices=list(SUITES))
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--data-dir", default=None)
    rep.add_argument("--verbose", type=int, default=2)
    rep.add_argument("--out", default="runs/reproduce_mnist")
    rep.add_argument("--publish", default=None, metavar="RESULTS_DIR",
                     help="write one result record per finished preset under RESULTS_DIR (the repository's results/)")
    rep.set_defaults(func=reproduce)


def reproduce(args) -> str:
    from keras_attdef.experiments.reproduction import Protocol, reproduce_mnist

    protocol = call_with_flags(Protocol, args)
    table = reproduce_mnist(args.out, args.presets, protocol, args.data_dir, args.suite, verbose=args.verbose,
                            results_dir=args.publish, command=args.command_line)
    print(f"Command: `{args.command_line}`\n\n{table}")
    return table


def _ablate_parser(sub) -> None:
    from keras_attdef import models
    from keras_attdef.experiments.ablation import FAMILIES, VARIANTS

    abl = sub.add_parser("ablate", help="attention defences' terms one at a time against madry, equal epochs")
    abl.add_argument("--family", choices=sorted(FAMILIES), default="aad")
    abl.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                     help="these variants instead of the family's (a teacher before its ATAT variants)")
    abl.add_argument("--model", default="small_lenet", choices=sorted(models.REGISTRY))
    add_data_flags(abl, "cifar10: the offline test copy split 8,000 / 2,000 (not the official training set)")
    abl.add_argument("--eps", type=float, default=0.3, help="Linf budget (8/255 = 0.0314 on CIFAR-10)")
    abl.add_argument("--epochs", type=int, default=2)
    abl.add_argument("--steps", type=int, default=3, help="PGD steps per round")
    abl.add_argument("--step-size", type=float, default=None, help="PGD step (default 2.5 eps / steps)")
    abl.add_argument("--eval-size", type=int, default=1000)
    abl.add_argument("--version", default="fast", choices=list(VERSIONS), help="AutoAttack-style cascade")
    abl.add_argument("--train-size", type=int, default=None, help="first N training digits (smoke tests)")
    abl.add_argument("--seed", type=int, default=0)
    abl.add_argument("--verbose", type=int, default=2)
    abl.add_argument("--out", default=None, help="default runs/ablate_FAMILY")
    abl.add_argument("--experiment", default=None,
                     help="the records' experiment name (default ablate_FAMILY); name another setting of a family, "
                          "e.g. ablate_attention_lenet, so its records do not replace the family's")
    abl.add_argument("--publish", default=None, metavar="RESULTS_DIR",
                     help="write one result record per variant under RESULTS_DIR (the repository's results/)")
    abl.set_defaults(func=ablate)


def ablate(args) -> str:
    from keras_attdef.experiments.ablation import ADAPTIVE_FAMILIES, FAMILIES, ablate as run_ablation

    experiment = args.experiment or f"ablate_{args.family}"
    table = call_with_flags(run_ablation, args, out=args.out or f"runs/{experiment}",
                            variants=args.variants or FAMILIES[args.family], experiment=experiment,
                            results_dir=args.publish, command=args.command_line,
                            adaptive=args.family in ADAPTIVE_FAMILIES)
    print(f"Command: `{args.command_line}`\n\n{table}")
    return table


def _report_parser(sub) -> None:
    rep = sub.add_parser("report", help="regenerate every results table (docs/tables, README, docs/results.md) "
                                        "from the records under results/")
    rep.add_argument("--results", default="results", help="the results folder")
    rep.add_argument("--repo", default=".", help="the repository whose docs and README are written")
    rep.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    rep.add_argument("--no-plots", action="store_true", help="skip the PNG bar charts")
    rep.set_defaults(func=report)


def report(args) -> int:
    from keras_attdef.results import stale, write_report

    if args.check:
        outdated = stale(args.results, args.repo)
        for path in outdated:
            print(f"stale: {path} (run `keras-attdef report`)")
        return 1 if outdated else 0
    for path in write_report(args.results, args.repo, plots=not args.no_plots):
        print(f"wrote {path}")
    return 0
