"""The AAD paper's MNIST table (Table 5), reproduced for every preset and cross-examined.

`reproduce_mnist` trains each preset to one protocol (the AAD paper's LeNet setting: 5 epochs, batch 100,
Adam 1e-3, keep-prob 0.5; Linf eps 0.3 with PGD-40 of step 0.01 after Madry et al. wherever a preset
runs PGD), then evaluates every model on the first 1,000 test digits with the paper's columns, the
AutoAttack-style suite with its masking audit, and the attention shift (the paper's Tables 3-4 shape).
Every epoch and every evaluation stage is saved as it ends, so a stopped run resumes where it stopped.

A preset that would need more than `max_minutes` of training stops after the last epoch that fits, and
the table says how many epochs it finished: the protocol is never changed silently.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np

from keras_attdef.evaluation.suites import paper_attacks
from keras_attdef.experiments.publish import publish_reproduction
from keras_attdef.experiments.store import ResultStore
from keras_attdef.experiments.training import read_progress, train_resumable
from keras_attdef.tables import markdown_table, percent
from keras_attdef.results import provenance
from keras_attdef.models import unwrap

# The AAD paper's Table 5 (MNIST, LeNet): clean, FGSM 0.15, I-FGSM 0.15 (3 rounds), StepLL 0.15,
# PGD-30 and PGD-100 at 0.3, in percent. Rows the paper has for our presets.
PAPER_COLUMNS = ("clean", "FGSM 0.15", "I-FGSM 0.15", "StepLL 0.15", "PGD-30", "PGD-100")
PAPER_TABLE5 = {
    "plain": (99.24, 74.83, 43.26, 80.23, 0.0, 0.0),
    "madry": (98.61, 97.95, 96.17, 91.41, 94.36, 88.37),
    "aad_pgd": (98.83, 98.26, 94.97, 91.67, 94.92, 90.09),
    "aad": (99.03, 98.69, 98.13, 98.23, 76.44, 71.60),
}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One training protocol for every preset.

    Attributes:
        epochs: epochs per preset (the paper's 5).
        batch_size: batch size (the paper's 100).
        lr: Adam learning rate.
        dropout: LeNet drop rate (1 - keep-prob).
        eps: Linf budget.
        pgd_steps: PGD steps where a preset trains with PGD (Madry et al.: 40).
        pgd_step_size: PGD step (Madry et al.: 0.01).
        warmup_epochs: epochs over which eps ramps up from 0. The papers do not ramp, but without a ramp
            `madry` (PGD-40 at eps 0.3 from the first step, Adam 1e-3) collapsed in its first epoch to a
            constant predictor (loss 2.303 = ln 10, the same logits for every input, 12.6% clean) and a dead
            ReLU net does not recover; one epoch of ramp is the stated deviation, for every preset.
        max_minutes: training time allowed per preset; it stops after the last epoch that fits.
        eval_size: first N test digits evaluated.
        seed: seeds weights, shuffling and attacks.
        train_size: first N training digits (None: all 60,000; smaller only for smoke tests).
    """

    epochs: int = 5
    batch_size: int = 100
    lr: float = 1e-3
    dropout: float = 0.5
    eps: float = 0.3
    pgd_steps: int = 40
    pgd_step_size: float = 0.01
    warmup_epochs: float = 1.0
    max_minutes: float = 90.0
    eval_size: int = 1000
    seed: int = 0
    train_size: int | None = None


def preset_defense(name: str, protocol: Protocol, steps_per_epoch: int, teacher=None):
    """The preset `name` built to the protocol (aad: StepLL rounds of eps / 2; aad_pgd: PGD rounds; fast:
    FGSM from a random start with step 1.25 eps, as Wong et al. train MNIST)."""
    from keras_attdef.defenses import PRESETS

    preset = PRESETS[name]
    warmup = int(protocol.warmup_epochs * steps_per_epoch)
    # the PGD step goes only to presets that run PGD: fast's single FGSM step keeps its paper's 1.25 eps
    pgd = {"steps": protocol.pgd_steps, "step_size": protocol.pgd_step_size} if "steps" in preset.options else {}
    return preset.from_options(eps=protocol.eps, warmup_steps=warmup, teacher=teacher, **pgd)


def student_model(name: str, protocol: Protocol, teacher=None):
    """The LeNet a preset trains: fresh, except ATAT's student, which starts from its teacher's weights.

    The ATAT paper (sec. 3.2) feeds clean and adversarial images "to the defensive network, which is
    initialized with the same parameters as the original network". Started from random weights instead,
    this protocol's ATAT collapsed to a constant output in its second epoch (`docs/results.md`).
    """
    from keras_attdef import models

    model = models.lenet(dropout=protocol.dropout)
    if _needs_teacher(name):
        if teacher is None:
            raise ValueError("atat's student starts from its teacher's weights: train the plain teacher first.")
        model.set_weights(teacher.get_weights())
    return model


def suite_stage(store: ResultStore, name: str, model, x, y, eps: float, folder, suite: str = "autoattack",
                seed: int = 0) -> dict:
    """`evaluation.evaluate` as a resumable stage: stored under `name/suite`, its report saved in `folder`."""
    from keras_attdef import evaluation

    def run_suite():
        report = evaluation.evaluate(model, x, y, eps=eps, suite=suite, seed=seed, name=name)
        report.save(folder)
        return report.to_dict()

    return store.get(f"{name}/suite", run_suite)


def evaluate_model(model, x, y, store: ResultStore, name: str, out: Path, protocol: Protocol,
                   suite: str = "autoattack") -> dict:
    """The paper's columns, the AutoAttack-style suite with its audit, and the attention shift; resumable."""
    from keras_attdef import analysis, evaluation
    from keras_attdef.attacks.spec import AttackSpec

    base = unwrap(model)
    paper = store.get(f"{name}/paper_columns", lambda: evaluation.evaluate_robustness(
        base, (x, y), paper_attacks(protocol.eps), batch_size=500).accuracy)

    full = suite_stage(store, name, base, x, y, protocol.eps, out / name / "evaluation", suite, protocol.seed)

    def run_shift():
        shift = analysis.attention_shift(base, x, y, AttackSpec("step_ll", eps=0.15), rounds=3)
        return {"fraction_succeeded": shift.fraction_succeeded, "succeeded": shift.succeeded,
                "failed": shift.failed, "rounds": shift.rounds, "num_images": shift.num_images,
                "empty_maps": shift.empty_maps}

    shift = store.get(f"{name}/attention_shift", run_shift)
    return {"paper": paper, "suite": full, "attention_shift": shift}


STAGES = ("paper_columns", "suite", "attention_shift")


def finished_results(store: ResultStore, out: Path, name: str) -> dict | None:
    """The results of a preset whose training and every evaluation stage finished, else None.

    They count only when they belong to the run in `out/name/progress.json` (the store is bound to its
    `run_id`), so figures of a model that was later retrained are never reported.
    """
    training = read_progress(Path(out) / name)
    stages = store.finished(name, training and training.get("run_id"), STAGES)
    if stages is None:
        return None
    return {"training": training, "paper": stages["paper_columns"], "suite": stages["suite"],
            "attention_shift": stages["attention_shift"], "provenance": store.data.get(f"{name}/provenance")}


DEFAULT_PRESETS = ("plain", "madry", "aad_pgd", "aad", "fast", "trades", "alp", "at_alp", "atat")


def reproduce_mnist(out="runs/reproduce_mnist", presets=DEFAULT_PRESETS, protocol: Protocol = Protocol(), data_dir=None,
                    suite: str = "autoattack", verbose: int = 2, results_dir=None,
                    command: str = "keras-attdef reproduce") -> str:
    """Trains and evaluates each preset; writes `out/table.md` and returns it.

    Args:
        out: output folder (checkpoints, `results.json`, reports, `table.md`); reused to resume.
        presets: preset names; `atat` uses the `plain` model as its teacher (trained first if absent).
        protocol: the training and evaluation protocol.
        data_dir: folder with `mnist.npz` (default `$KERAS_ATTDEF_DATA`, then tfds, then the bundled MNIST).
        suite: the evaluation suite (`"autoattack"`; `"quick"` for smoke tests).
        verbose: `fit` verbosity.
        results_dir: where the result records go (default `out/results`; the repository's `results/` to
            publish them).
        command: the command recorded in the records' provenance.

    Returns:
        The Markdown table.
    """
    from keras_attdef import datasets

    out = Path(out)
    store = ResultStore(out / "results.json")
    x, y = datasets.load("mnist", "train", data_dir, limit=protocol.train_size)
    x_test, y_test = datasets.load("mnist", "test", data_dir, limit=protocol.eval_size)
    steps_per_epoch = int(np.ceil(len(x) / protocol.batch_size))

    results, teacher = {}, None

    def train_and_evaluate(name: str):
        defense = preset_defense(name, protocol, steps_per_epoch, teacher)
        build = functools.partial(student_model, name, protocol, teacher)
        model, training = train_resumable(out / name, build, defense, x, y, protocol.epochs, protocol.lr,
                                          protocol.batch_size, protocol.seed, 60 * protocol.max_minutes, verbose)
        store.bind(name, training.get("run_id", "unnamed"))
        if name in presets:
            results[name] = {"training": training, **evaluate_model(model, x_test, y_test, store, name, out,
                                                                    protocol, suite)}
            # the code and command that made these figures, not those of a later run that only republishes them
            results[name]["provenance"] = store.get(f"{name}/provenance", lambda: provenance(command, protocol.seed))
        return model

    for name in presets:
        stored = finished_results(store, out, name)
        if stored is not None:
            # a new checkout has the results but not the models: a finished preset is not trained again
            results[name] = stored
            continue
        if _needs_teacher(name) and teacher is None:
            # loaded when its checkpoint is here, else retrained (and re-evaluated, so that the plain row is
            # the teacher ATAT learned from)
            teacher = train_and_evaluate("plain").base_model
        model = train_and_evaluate(name)
        if name == "plain":
            teacher = model.base_model
    table = reproduction_table(results, protocol, suite)
    (out / "table.md").write_text(table + "\n")
    publish_reproduction(results, protocol, results_dir or out / "results", PAPER_TABLE5, command)
    return table


def reproduction_table(results: dict, protocol: Protocol, suite: str = "autoattack") -> str:
    """Ours beside the paper's Table 5, with the AutoAttack-style figure, the audit, cost and attention IoU."""
    worst = "AutoAttack-style worst case" if suite == "autoattack" else f"worst case ({suite} suite)"
    head = ["preset", "epochs", "train min", *PAPER_COLUMNS, f"{worst} {protocol.eps:g}",
            "PGD-100 over worst (points)", "flags", "IoU@10 fooled / kept"]
    rows = []
    for name, result in results.items():
        paper, full, shift, training = result["paper"], result["suite"], result["attention_shift"], result["training"]
        ours = [paper["clean"]] + [paper[c] for c in PAPER_COLUMNS[1:]]
        published = PAPER_TABLE5.get(name)
        cells = [percent(v, 2) + (f" ({published[i]:.2f}%)" if published else "") for i, v in enumerate(ours)]
        epochs = f"{training['epochs_done']}" + ("" if training["epochs_done"] >= protocol.epochs else
                                                 f" of {protocol.epochs} (time limit)")
        iou = shift["succeeded"].get("10", shift["succeeded"].get(10)), shift["failed"].get("10", shift["failed"].get(10))
        rows.append([name, epochs, f"{training['seconds'] / 60:.1f}", *cells,
                     percent(full["accuracy"]["worst case"], 2),
                     # what a PGD-only evaluation (the paper's own) would have overstated
                     f"{100 * (paper['PGD-100'] - full['accuracy']['worst case']):.1f}",
                     ", ".join(full["raised"]) or "none",
                     " / ".join("n/a" if v is None or math.isnan(v) else f"{v:.3f}" for v in iou)
                     + (f" ({percent(shift['empty_maps'], 1)} empty maps)" if shift.get("empty_maps") else "")])
    note = (f"Protocol: LeNet (dropout {protocol.dropout}), {protocol.epochs} epochs, batch {protocol.batch_size}, "
            f"Adam {protocol.lr:g}; Linf eps {protocol.eps:g}, PGD-{protocol.pgd_steps} step {protocol.pgd_step_size:g} "
            f"where a preset trains with PGD; eps ramped over {protocol.warmup_epochs:g} epochs; at most "
            f"{protocol.max_minutes:g} training minutes per preset. First {protocol.eval_size} test digits; "
            "(paper) = the AAD paper's Table 5. Worst case: per digit, correct under every attack of the "
            f"{suite!r} suite (autoattack: APGD-CE, APGD-T, FAB-T, Square with 5,000 queries, FGSM, PGD-20 and "
            "PGD-100). PGD-100 over worst: the paper's PGD-100 column minus the worst case, what a PGD-only "
            "figure would overstate. IoU@10: top-10-cell Grad-CAM IoU between clean and StepLL-0.15 "
            "images, where the attack fooled / did not fool the model; images with an all-zero map are left out.")
    return markdown_table(head, rows) + "\n\n" + note


def _needs_teacher(preset: str) -> bool:
    """Whether a preset declares a teacher among its options (ATAT): it then starts from the teacher too."""
    from keras_attdef.defenses import PRESETS

    return preset in PRESETS and "teacher" in PRESETS[preset].options
