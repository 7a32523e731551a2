"""Why do the attention defences trail Madry? Their terms one at a time, at equal epochs (issue 11, item 3).

Each variant is a preset with one part changed, trained for the same number of epochs on the same digits
in the same order, with the same attack budget per round; the table gives training time and the accuracy
under the AutoAttack-style cascade, so a term that helps or hurts shows in one column.

Two families (`FAMILIES`):

- `"aad"`: the paper's AAD-PGD (alpha : beta : gamma = 2 : 1 : 2, two rounds, kappa the mean of the map,
  Grad-CAM on the topmost conv layer) and, one change each: no rectification (beta 0, the mask unused), no
  preservation (gamma 0), neither (two-round PGD training on clean and adversarial digits), one round, a
  fixed kappa of 0.5, Grad-CAM on the first conv layer, StepLL rounds (the paper's AAD), a lighter clean
  share (alpha 1 instead of 2), and gradient x activation maps in place of Grad-CAM (a network can make
  Grad-CAM zero everywhere; the table's last column counts such maps).
- `"pairing"`: AT+ALP and ATAT as in their papers, each without one of its two terms, and what both add
  their terms to (cross-entropy on clean and adversarial digits); ALP (AT+ALP without the attention term)
  and ATAT with a robust (madry) teacher instead of a plain one.

Example:

>>> from keras_attdef.experiments.ablation import FAMILIES, VARIANTS, variant_defense
>>> variant_defense("no_rect", eps=0.3, steps=3, warmup_steps=10).weights["rect"]
0.0
>>> FAMILIES["aad"][:3]
['madry', 'aad_pgd', 'no_rect']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_attdef.experiments.publish import ablation_experiment, ablation_record
from keras_attdef.experiments.store import ResultStore
from keras_attdef.experiments.training import read_progress, train_resumable
from keras_attdef.results import write_experiment, write_record
from keras_attdef.tables import markdown_table, percent

# name -> (what changes, preset, its arguments); an ATAT variant's "teacher" names the variant it learns from
VARIANTS = {
    "plain": ("no defence (ATAT's teacher)", "plain", {}),
    "madry": ("PGD training on adversarial digits only (the reference)", "madry", {}),
    "aad_pgd": ("the paper's AAD-PGD: 2 : 1 : 2, two PGD rounds, kappa mean, top conv", "aad", {}),
    "no_rect": ("no rectification (beta 0: the mask is not used)", "aad", {"beta": 0.0}),
    "no_pres": ("no preservation (gamma 0)", "aad", {"gamma": 0.0}),
    "no_attention": ("neither term: two-round PGD training on clean + adversarial digits", "aad",
                     {"beta": 0.0, "gamma": 0.0}),
    "one_round": ("one PGD round instead of two", "aad", {"rounds": 1}),
    "kappa_0.5": ("kappa 0.5 instead of the map's mean", "aad", {"kappa": 0.5}),
    "layer_conv1": ("Grad-CAM on conv1 instead of the topmost conv layer", "aad", {"layer": "conv1"}),
    "alpha_1": ("classification weight alpha 1 instead of 2", "aad", {"alpha": 1.0}),
    "aad_step_ll": ("StepLL rounds of eps / 2 (the paper's AAD) instead of PGD", "aad", {"attack": "step_ll"}),
    "grad_x_activation": ("attention maps by gradient x activation instead of Grad-CAM", "aad",
                          {"cam_method": "grad_x_activation"}),
    "clean_and_adv": ("cross-entropy on clean + adversarial digits, no other term (what the pairing defences add "
                      "to)", "alp", {"weight": 0.0}),
    "alp": ("+ logit pairing 0.5 (ALP: AT+ALP without its attention term)", "alp", {}),
    "at_alp": ("the paper's AT+ALP: activation attention 1 on every conv layer, logit pairing 0.5", "at_alp", {}),
    "at_alp_no_pair": ("AT+ALP without logit pairing", "at_alp", {"pair_weight": 0.0}),
    "atat": ("the paper's ATAT: plain teacher's Grad-CAM transferred (lambda1 1), logit pairing 0.5", "atat",
             {"teacher": "plain"}),
    "atat_no_transfer": ("ATAT without the attention transfer (lambda1 0)", "atat",
                         {"teacher": "plain", "lambda1": 0.0}),
    "atat_no_pair": ("ATAT without logit pairing (lambda2 0)", "atat", {"teacher": "plain", "lambda2": 0.0}),
    "atat_light_transfer": ("ATAT with a tenth of the transfer weight (lambda1 0.1; the paper gives no value)",
                            "atat", {"teacher": "plain", "lambda1": 0.1}),
    "atat_robust_teacher": ("ATAT with the madry variant as teacher instead of the plain one", "atat",
                            {"teacher": "madry"}),
}
FAMILIES = {
    "aad": ["madry", "aad_pgd", "no_rect", "no_pres", "no_attention", "one_round", "kappa_0.5", "layer_conv1",
            "alpha_1", "aad_step_ll", "grad_x_activation"],
    "pairing": ["plain", "madry", "clean_and_adv", "alp", "at_alp", "at_alp_no_pair", "atat", "atat_no_transfer",
                "atat_no_pair", "atat_light_transfer", "atat_robust_teacher"],
}


def variant_defense(name: str, eps: float, steps: int, warmup_steps: int, teachers: dict | None = None):
    """The defence of variant `name` (see `VARIANTS`) at one attack budget.

    Args:
        name: a key of `VARIANTS`.
        eps: Linf budget.
        steps: PGD steps per round (step `2.5 * eps / steps`).
        warmup_steps: steps over which eps ramps up.
        teachers: trained classifiers by variant name, for the ATAT variants.
    """
    from keras_attdef import defenses

    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose from {sorted(VARIANTS)}.")
    _, preset, change = VARIANTS[name]
    if preset == "plain":
        return defenses.plain()
    budget = {"eps": eps, "warmup_steps": warmup_steps}
    pgd = {**budget, "steps": steps, "step_size": None}
    if preset == "aad":
        return defenses.aad(**{"attack": "pgd", **change}, **budget, steps=steps)
    if preset == "atat":
        teacher = (teachers or {}).get(change["teacher"])
        if teacher is None:
            raise ValueError(f"Variant {name!r} needs the trained {change['teacher']!r} variant as its teacher; "
                             "train that variant first (list it before this one).")
        return defenses.atat(teacher, **{k: v for k, v in change.items() if k != "teacher"}, **pgd)
    return defenses.get(preset, **change, **pgd)


def empty_map_share(model, x, y, layer: str | None = None, method: str = "grad_cam", batch_size: int = 500) -> float:
    """Share of images whose attention map (true class, at `layer`, by `method`) is zero everywhere.

    A network can satisfy AAD's attention terms vacuously: with every map zero, the clean and adversarial
    maps agree (L_p = 0) and the attention mask is empty (L_r has nothing to rectify).
    """
    from keras_attdef.attention.gradcam import grad_cam

    empty = []
    for start in range(0, len(y), batch_size):
        maps = grad_cam(model, x[start:start + batch_size], layer, target=y[start:start + batch_size],
                        method=method).numpy()
        empty.append(maps.reshape(len(maps), -1).max(axis=1) <= 0)
    return float(np.mean(np.concatenate(empty)))


def ablate(out="runs/ablate_aad", variants=tuple(FAMILIES["aad"]), model: str = "small_lenet", epochs: int = 2,
           steps: int = 3, eps: float = 0.3, batch_size: int = 100, lr: float = 1e-3, eval_size: int = 1000,
           version: str = "fast", train_size: int | None = None, data_dir=None, seed: int = 0,
           verbose: int = 2, experiment: str = "ablation", results_dir=None,
           command: str = "keras-attdef ablate") -> str:
    """Trains every variant for `epochs` epochs and evaluates it; writes `out/table.md` and returns it.

    Args:
        out: output folder; reused to resume (per epoch, and per evaluated variant). A variant whose
            training and evaluation are both stored is not trained again, unless a later unfinished
            variant needs it as a teacher.
        variants: names from `VARIANTS` (a teacher before the ATAT variants that learn from it), e.g.
            `FAMILIES["pairing"]`.
        model: `"small_lenet"` or `"lenet"`.
        epochs: epochs per variant (eps ramps up over the first).
        steps: PGD steps per round (step `2.5 * eps / steps`).
        eps: Linf budget.
        batch_size: batch size.
        lr: Adam learning rate.
        eval_size: first N test digits evaluated.
        version: the AutoAttack-style cascade's version (`"fast"`: APGD-CE and APGD-T with 3 targets).
        train_size: first N training digits (None: all).
        data_dir: data folder (default `$KERAS_ATTDEF_DATA`).
        seed: seeds weights, batch order and attacks.
        verbose: `fit` verbosity.

    Returns:
        The Markdown table.
    """
    from keras_attdef import datasets, models
    from keras_attdef.evaluation import autoattack

    build = models.get(model)
    out = Path(out)
    store = ResultStore(out / "results.json")
    x, y = datasets.load("mnist", "train", data_dir, limit=train_size)
    x_test, y_test = datasets.load("mnist", "test", data_dir, limit=eval_size)
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    stages = ("autoattack", "empty_maps")

    def stored(name):
        training = read_progress(out / name)
        figures = store.finished(name, training and training.get("run_id"), stages)
        return None if figures is None else (training, figures)

    needed = {VARIANTS[name][2]["teacher"] for name in variants if VARIANTS[name][1] == "atat" and not stored(name)}
    rows, teachers, records = [], {}, []
    setting = {"model": model, "epochs": epochs, "eps": eps, "version": version, "seed": seed, "n": len(y_test),
               "batch_size": batch_size, "lr": lr, "steps": steps}
    for name in variants:
        done = stored(name)
        if done is None or name in needed:
            defense = variant_defense(name, eps, steps, steps_per_epoch, teachers)
            robust, training = train_resumable(out / name, build, defense, x, y, epochs, lr, batch_size, seed,
                                               verbose=verbose)
            store.bind(name, training["run_id"])
            teachers[name] = robust.base_model

            def evaluate(robust=robust):
                result = autoattack(robust, x_test, y_test, eps, version=version, seed=seed)
                return {"accuracy": result.accuracy, "seconds": result.seconds}

            store.get(f"{name}/autoattack", evaluate)
            store.get(f"{name}/empty_maps", lambda robust=robust, defense=defense: empty_map_share(
                robust.base_model, x_test, y_test, getattr(defense, "layer", None),
                getattr(defense, "cam_method", "grad_cam")))
            done = stored(name)
        training, figures = done
        records.append(ablation_record(experiment, name, VARIANTS[name][0], VARIANTS[name][1], training, figures,
                                       setting, command))
        accuracy = figures["autoattack"]["accuracy"]
        rows.append([name, VARIANTS[name][0], f"{training['seconds']:.0f}",
                     percent(training["logs"][-1].get("adv_accuracy", float("nan"))),
                     percent(accuracy["clean"]), percent(accuracy["after APGD-CE"]), percent(accuracy["robust"]),
                     percent(figures["empty_maps"], 1)])
    head = ["variant", "change", "train s", "train adv acc (last epoch)", "clean", "after APGD-CE",
            f"AutoAttack-style ({version})", "empty attention maps"]
    note = (f"{model}, {epochs} epochs, batch {batch_size}, Adam {lr:g}, seed {seed}; Linf eps {eps:g}, PGD-{steps} "
            f"(step 2.5 eps / {steps}) per round, eps ramped over epoch 1; first {len(y_test)} test digits. Empty "
            "attention maps: share of those digits whose true-class map (the variant's method and layer; Grad-CAM "
            "at the topmost conv layer otherwise) is zero everywhere.")
    table = markdown_table(head, rows) + "\n\n" + note
    (out / "table.md").write_text(table + "\n")
    results_dir = results_dir or out / "results"
    write_experiment(results_dir, ablation_experiment(experiment, variants, setting, command))
    for record in records:
        write_record(results_dir, record)
    return table
