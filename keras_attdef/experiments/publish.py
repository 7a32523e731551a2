"""Publishing an experiment's figures as result records (`keras_attdef.results`), with their provenance.

`reproduction_records` turns the reproduction's finished stages into one record per preset; the
reproduction writes them at its end, and `keras-attdef reproduce --publish results` puts them where the
generated tables read them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from keras_attdef.evaluation.adaptive import ADAPTIVE_ROW
from keras_attdef.results import provenance, sha256, write_experiment, write_record
from keras_attdef.results.schema import SCHEMA_VERSION

REPRODUCTION = "reproduce_mnist"
PAPER_SOURCE = "the AAD paper's Table 5 (arXiv:1811.09831)"
# The paper's PGD columns use a step of 0.01; the suite's PGD rows use its own step, so the names differ.
PAPER_ROW_NAMES = {"PGD-30": "PGD-30 (step 0.01)", "PGD-100": "PGD-100 (step 0.01)"}
SUITE_ROWS = ("APGD-CE", "APGD-T", "FAB-T", "Square", "worst case")
REPRODUCTION_COLUMNS = ["clean", "FGSM 0.15", "I-FGSM 0.15", "StepLL 0.15", "PGD-30 (step 0.01)",
                        "PGD-100 (step 0.01)", *SUITE_ROWS, "PGD-100 over worst (points)", "IoU@10 fooled",
                        "IoU@10 kept", "empty maps"]
SUITE_LABEL = "AutoAttack-style worst case (standard: APGD-CE, APGD-T, FAB-T, Square; with FGSM, PGD-20, PGD-100)"


def _number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def reproduction_record(name: str, result: dict, protocol, paper_table: dict, command: str, **provenance_extra) -> dict:
    """The record of one preset from its finished reproduction stages (`training`, `paper`, `suite`,
    `attention_shift`, and `provenance` when it was stamped as the figures were made)."""
    paper, suite, shift, training = result["paper"], result["suite"], result["attention_shift"], result["training"]
    accuracy = {PAPER_ROW_NAMES.get(k, k): v for k, v in paper.items() if k != "worst case"}
    # Suites run before the cascade reuse hold each part alone ("APGD-T"); later ones the cascade's rows
    # ("after APGD-T"): both are kept under their own names.
    accuracy.update({k: v for k, v in suite["accuracy"].items() if k in SUITE_ROWS or k.startswith("after ")})
    reference = None
    if name in paper_table:
        columns = ["clean", "FGSM 0.15", "I-FGSM 0.15", "StepLL 0.15", "PGD-30 (step 0.01)", "PGD-100 (step 0.01)"]
        reference = {"source": PAPER_SOURCE, "accuracy": dict(zip(columns, paper_table[name]))}
    succeeded, failed = shift["succeeded"], shift["failed"]
    metrics = {"PGD-100 over worst (points)": round(100 * (paper["PGD-100"] - suite["accuracy"]["worst case"]), 1),
               "IoU@10 fooled": _number(succeeded.get("10")), "IoU@10 kept": _number(failed.get("10")),
               "empty maps": f"{100 * shift.get('empty_maps', 0.0):.1f}%",
               "attention shift digits": shift.get("num_images")}
    return {
        "schema_version": SCHEMA_VERSION, "experiment": REPRODUCTION, "model": name, "dataset": "mnist",
        "n": int(suite["num_examples"]), "threat": {"norm": suite["norm"], "eps": float(suite["eps"])},
        "evaluation": SUITE_LABEL, "accuracy": accuracy, "headline": "worst case", "audit_flags": list(suite["raised"]),
        "training": {"preset": name, "architecture": f"lenet (dropout {protocol.dropout})",
                     "epochs": int(training["epochs_done"]), "epochs_planned": protocol.epochs,
                     "train_seconds": float(training["seconds"])},
        "metrics": metrics, "reference": reference, "weights": None,
        "provenance": result.get("provenance") or provenance(command, protocol.seed, **provenance_extra),
    }


def reproduction_experiment(protocol, presets) -> dict:
    """The reproduction's `experiment.json`: title, protocol, command and the table's columns."""
    return {
        "schema_version": SCHEMA_VERSION, "experiment": REPRODUCTION,
        "title": "The AAD paper's MNIST table (Table 5), reproduced for every preset",
        "protocol": (f"LeNet (dropout {protocol.dropout}), {protocol.epochs} epochs or as many as fit in "
                     f"{protocol.max_minutes:g} training minutes, batch {protocol.batch_size}, Adam {protocol.lr:g}; "
                     f"Linf eps {protocol.eps:g}, PGD-{protocol.pgd_steps} of step {protocol.pgd_step_size:g} where a "
                     f"preset trains with PGD; eps ramped over {protocol.warmup_epochs:g} epoch; seed {protocol.seed}. "
                     "PGD-100 over worst: the paper's PGD-100 column minus the worst case (what a PGD-only figure "
                     "overstates). IoU@10: top-10-cell Grad-CAM IoU between clean and StepLL-0.15 images where the "
                     "attack fooled / did not fool the model, all-zero maps left out. Weights are not published "
                     "(each row is 70-80 training minutes): rerun the command to regenerate them."),
        "command": "keras-attdef reproduce --publish results",
        "columns": REPRODUCTION_COLUMNS, "order": list(presets),
    }


def publish_reproduction(results: dict, protocol, results_dir, paper_table: dict, command: str,
                         **provenance_extra) -> list:
    """Writes the experiment file and one record per finished preset under `results_dir`; returns the paths."""
    paths = [write_experiment(results_dir, reproduction_experiment(protocol, list(results)))]
    for name, result in results.items():
        paths.append(write_record(results_dir, reproduction_record(name, result, protocol, paper_table, command,
                                                                   **provenance_extra)))
    return paths


def training_record(args, defense, architecture: str, train_seconds: float, evaluation: dict, command: str) -> dict:
    """The record of one `keras-attdef train` run (`args`: its parsed flags; `evaluation`: its headline)."""
    from keras_attdef.defenses import serialize

    return {
        "schema_version": SCHEMA_VERSION, "experiment": args.experiment, "model": args.defense,
        "dataset": args.dataset, "n": int(evaluation["n"]), "threat": {"norm": "linf", "eps": float(args.eps)},
        "evaluation": evaluation["label"], "accuracy": evaluation["accuracy"], "headline": "worst case",
        "audit_flags": [],  # the cascade alone runs no audit: `keras-attdef evaluate` does
        "training": {"preset": args.defense, "architecture": architecture, "epochs": int(args.epochs),
                     "train_seconds": float(train_seconds), "batch_size": args.batch_size,
                     "config": serialize(defense)},
        "metrics": {"eval seconds": round(float(evaluation["eval_seconds"]), 1)}, "reference": None, "weights": None,
        "provenance": provenance(command, args.seed),
    }


def training_experiment(record: dict) -> dict:
    """A minimal `experiment.json` for records made by `keras-attdef train --publish`."""
    return {"schema_version": SCHEMA_VERSION, "experiment": record["experiment"],
            "title": f"keras-attdef train ({record['experiment']})",
            "protocol": "One `keras-attdef train` run per model; the record's training block has its configuration.",
            "command": record["provenance"]["command"],
            "columns": [k for k in record["accuracy"]] + ["eval seconds"]}


def publish_training(record: dict, model, results_dir) -> list:
    """Writes the model's weights (an uncompiled `.keras`, with its SHA-256) and its record under `results_dir`.

    The experiment's `experiment.json` is written only if missing, so a curated description is kept.
    """
    folder = Path(results_dir) / record["experiment"]
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{record['model']}.keras"
    model.save(weights)
    record = dict(record, weights=_linked(weights))
    return _experiment_if_missing(results_dir, record, training_experiment) + [weights, write_record(results_dir, record)]


def _linked(weights) -> dict:
    """A record's `weights` block: the file's path, SHA-256 and size."""
    return {"path": Path(weights).as_posix(), "sha256": sha256(weights), "bytes": Path(weights).stat().st_size}


def _experiment_if_missing(results_dir, record: dict, describe) -> list:
    """Writes `describe(record)` as the experiment's `experiment.json` unless one exists (a curated one is kept)."""
    if (Path(results_dir) / record["experiment"] / "experiment.json").exists():
        return []
    return [write_experiment(results_dir, describe(record))]


def evaluation_record(report, experiment: str, name: str, dataset: str, command: str, seed: int,
                      weights=None, **provenance_extra) -> dict:
    """The record of one `keras-attdef evaluate` (or `merge`) report of a saved model.

    Args:
        report: the `EvaluationReport`.
        experiment: the experiment name.
        name: the record's model name.
        dataset: the dataset the report's points come from.
        command: the command for the provenance.
        seed: the attacks' seed.
        weights: the evaluated `.keras` file, linked with its SHA-256 (None: not linked).
        **provenance_extra: further provenance entries (a merge's `shard_commits`).
    """
    rows = [row for row in report.accuracy if row not in ("clean", "worst case")]
    if "AutoAttack-style" in report.label:
        evaluation = SUITE_LABEL
    else:
        evaluation = f"worst case per point over {', '.join(rows)} (not the standard AutoAttack-style cascade)"
    if "attacks in bfloat16" in report.label:
        evaluation += ", attacks in bfloat16"
    return {
        "schema_version": SCHEMA_VERSION, "experiment": experiment, "model": name, "dataset": dataset,
        "n": int(report.num_examples), "threat": {"norm": report.norm, "eps": float(report.eps)},
        "evaluation": evaluation, "accuracy": dict(report.accuracy), "headline": "worst case",
        "audit_flags": list(report.raised), "training": None,
        "metrics": {"eval seconds": round(float(report.seconds), 1)}, "reference": None,
        "weights": None if weights is None else _linked(weights),
        "provenance": provenance(command, seed, **provenance_extra),
    }


def evaluation_experiment(record: dict) -> dict:
    """A minimal `experiment.json` for records made by `keras-attdef evaluate --publish` (or `merge`)."""
    return {"schema_version": SCHEMA_VERSION, "experiment": record["experiment"],
            "title": f"keras-attdef evaluate ({record['experiment']})",
            "protocol": "One `keras-attdef evaluate` report per saved model; the record links the evaluated weights "
                        "by their SHA-256.",
            "command": record["provenance"]["command"], "columns": [*record["accuracy"], "eval seconds"]}


def publish_evaluation(record: dict, results_dir) -> list:
    """Writes an evaluation record, and its experiment's `experiment.json` if missing."""
    return _experiment_if_missing(results_dir, record, evaluation_experiment) + [write_record(results_dir, record)]


FAST_CASCADE = "AutoAttack-style worst case (fast: APGD-CE, then APGD-T with 3 targets)"


def _bits(text: str):
    import numpy as np

    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def ablation_record(experiment: str, name: str, variant: tuple, training: dict, figures: dict, setting: dict,
                    command: str) -> dict:
    """The record of one ablation variant.

    Args:
        experiment: the experiment name.
        name: the variant's name.
        variant: its `(change, preset, arguments)` entry of `ablation.VARIANTS`.
        training: its training progress (`epochs_done`, `seconds`, `logs`).
        figures: its stored stages: `autoattack` and `empty_maps`, and, when run, `adaptive` (per-point
            outcomes as a 0/1 string), `iou` (`succeeded` / `failed` IoU@10) and `provenance` (stamped when
            the figures were made; without it, this process's).
        setting: model, epochs, eps, version, seed, n.
        command: the command for the provenance.
    """
    change, preset, arguments = variant
    cascade = figures["autoattack"]["accuracy"]
    accuracy = {"clean": cascade["clean"],
                **{k.removeprefix("after "): v for k, v in cascade.items() if k.startswith("after ")},
                "worst case": cascade["robust"]}
    metrics = {"change": change, "train adv acc": _number(training["logs"][-1].get("adv_accuracy")),
               "empty maps": f"{100 * figures['empty_maps']:.1f}%"}
    label = FAST_CASCADE if setting["version"] == "fast" else SUITE_LABEL.replace("; with FGSM, PGD-20, PGD-100", "")
    if figures["autoattack"].get("robust"):  # stores older than per-point outcomes have none
        metrics["worst case per point"] = figures["autoattack"]["robust"]
    if figures.get("adaptive") and figures["autoattack"].get("robust"):
        adaptive, robust = _bits(figures["adaptive"]), _bits(figures["autoattack"]["robust"])
        worst = robust & adaptive
        accuracy.update({ADAPTIVE_ROW: float(adaptive.mean()), "cascade worst case": cascade["robust"],
                         "worst case": float(worst.mean())})
        metrics["worst case per point"] = "".join("1" if w else "0" for w in worst)
        metrics.update({"IoU@10 kept": figures["iou"]["failed"], "IoU@10 fooled": figures["iou"]["succeeded"]})
        label = f"{label}, per point together with {ADAPTIVE_ROW}"
    return {
        "schema_version": SCHEMA_VERSION, "experiment": experiment, "model": name,
        "dataset": setting.get("dataset", "mnist"), "n": int(setting["n"]), "threat": {"norm": "linf", "eps": float(setting["eps"])}, "evaluation": label,
        "accuracy": accuracy, "headline": "worst case", "audit_flags": [],
        "training": {"preset": preset, "architecture": arguments.get("model", setting["model"]),
                     "epochs": int(training["epochs_done"]), "train_seconds": float(training["seconds"])},
        "metrics": metrics, "reference": None, "weights": None,
        "provenance": figures.get("provenance") or provenance(command, setting["seed"]),
    }


def add_paired_tests(records: list, references=("madry", "trades")) -> None:
    """Adds `p vs <reference>` to each record with per-point outcomes: the one-sided sign test that the
    variant is more robust than the reference on the same points (McNemar on the points they disagree on)."""
    from keras_attdef.evaluation.audit import sign_test

    points = {r["model"]: _bits(r["metrics"]["worst case per point"]) for r in records
              if "worst case per point" in r.get("metrics", {})}
    for record in records:
        mine = points.get(record["model"])
        for reference in references:
            if mine is None or reference not in points or reference == record["model"]:
                continue
            theirs = points[reference]
            wins, losses = int(np.sum(mine & ~theirs)), int(np.sum(~mine & theirs))
            record["metrics"][f"p vs {reference}"] = float(f"{sign_test(wins, losses):.3g}")


def _step_text(setting: dict) -> str:
    step = setting.get("step_size")
    return f"2.5 eps / {setting['steps']}" if step is None else f"{step:g}"


def ablation_experiment(experiment: str, variants, setting: dict, command: str, adaptive: bool = False) -> dict:
    """The `experiment.json` of an ablation family."""
    columns = ["change", "clean", "APGD-CE", "worst case", "train adv acc", "empty maps"]
    if adaptive:
        columns = ["change", "clean", "APGD-CE", "cascade worst case", ADAPTIVE_ROW, "worst case", "IoU@10 kept",
                   "IoU@10 fooled", "empty maps"]
    data = f"{setting['data']}. " if setting.get("dataset", "mnist") != "mnist" else ""
    protocol = (f"{data}{setting['model']} (or the model a variant names), {setting['epochs']} epochs, batch "
                f"{setting['batch_size']}, Adam {setting['lr']:g}, seed {setting['seed']}; Linf eps {setting['eps']:g}, "
                f"PGD-{setting['steps']} (step {_step_text(setting)}) per round, eps ramped over epoch 1. Empty "
                "maps: share of the test images whose true-class attention map (the variant's method and layer) is "
                "zero everywhere. Train seconds are a guide only when the machine was shared.")
    if adaptive:
        protocol += (f" {ADAPTIVE_ROW}: PGD-50 raising cross-entropy plus the variant's own map distance (signed "
                     "Grad-CAM and floored cosine for variants without a map term). IoU@10: top-10-cell Grad-CAM "
                     f"IoU between clean and StepLL-{setting['eps'] / 2:.3g} images, kept = not fooled. p vs X: "
                     "one-sided sign test that the variant's worst case beats X's on the same images.")
    return {"schema_version": SCHEMA_VERSION, "experiment": experiment,
            "title": f"Ablation {experiment.removeprefix('ablate_')}: one change at a time, equal epochs",
            "protocol": protocol, "command": command, "columns": columns, "order": list(variants)}
