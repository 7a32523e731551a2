"""Publishing an experiment's figures as result records (`keras_attdef.results`), with their provenance.

`reproduction_records` turns the reproduction's finished stages into one record per preset; the
reproduction writes them at its end, and `keras-attdef reproduce --publish results` puts them where the
generated tables read them.
"""
from __future__ import annotations

import math

from keras_attdef.results import provenance, write_experiment, write_record
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
    `attention_shift`)."""
    paper, suite, shift, training = result["paper"], result["suite"], result["attention_shift"], result["training"]
    accuracy = {PAPER_ROW_NAMES.get(k, k): v for k, v in paper.items() if k != "worst case"}
    accuracy.update({k: suite["accuracy"][k] for k in SUITE_ROWS})
    reference = None
    if name in paper_table:
        columns = ["clean", "FGSM 0.15", "I-FGSM 0.15", "StepLL 0.15", "PGD-30 (step 0.01)", "PGD-100 (step 0.01)"]
        reference = {"source": PAPER_SOURCE, "accuracy": dict(zip(columns, paper_table[name]))}
    succeeded, failed = shift["succeeded"], shift["failed"]
    metrics = {"PGD-100 over worst (points)": round(100 * (paper["PGD-100"] - suite["accuracy"]["worst case"]), 1),
               "IoU@10 fooled": _number(succeeded.get("10")), "IoU@10 kept": _number(failed.get("10")),
               "empty maps": f"{100 * shift.get('empty_maps', 0.0):.1f}%",
               "attention shift digits": shift["num_images"]}
    return {
        "schema_version": SCHEMA_VERSION, "experiment": REPRODUCTION, "model": name, "dataset": "mnist",
        "n": int(suite["num_examples"]), "threat": {"norm": suite["norm"], "eps": float(suite["eps"])},
        "evaluation": SUITE_LABEL, "accuracy": accuracy, "headline": "worst case", "audit_flags": list(suite["raised"]),
        "training": {"preset": name, "architecture": f"lenet (dropout {protocol.dropout})",
                     "epochs": int(training["epochs_done"]), "epochs_planned": protocol.epochs,
                     "train_seconds": float(training["seconds"])},
        "metrics": metrics, "reference": reference, "weights": None,
        "provenance": provenance(command, protocol.seed, **provenance_extra),
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
