"""Why do the attention defences trail Madry? Their terms one at a time, at equal epochs (issue 11, item 3).

Each variant is a preset with one part changed, trained for the same number of epochs on the same digits
in the same order, with the same attack budget per round; the table gives training time and the accuracy
under the AutoAttack-style cascade, so a term that helps or hurts shows in one column.

Three families (`FAMILIES`):

- `"aad"`: the paper's AAD-PGD (alpha : beta : gamma = 2 : 1 : 2, two rounds, kappa the mean of the map,
  Grad-CAM on the topmost conv layer) and, one change each: no rectification (beta 0, the mask unused), no
  preservation (gamma 0), neither (two-round PGD training on clean and adversarial digits), one round, a
  fixed kappa of 0.5, Grad-CAM on the first conv layer, StepLL rounds (the paper's AAD), a lighter clean
  share (alpha 1 instead of 2), and gradient x activation maps in place of Grad-CAM (a network can make
  Grad-CAM zero everywhere; the table's last column counts such maps).
- `"pairing"`: AT+ALP and ATAT as in their papers, each without one of its two terms, and what both add
  their terms to (cross-entropy on clean and adversarial digits); ALP (AT+ALP without the attention term)
  and ATAT with a robust (madry) teacher instead of a plain one, trained from scratch or (as the ATAT
  paper starts its student) from the teacher's weights.
- `"attention"` (issue 28): TRADES or madry plus attention terms that cannot be met by vanishing maps.

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

from keras_attdef.experiments.publish import ablation_experiment, ablation_record, add_paired_tests
from keras_attdef.experiments.store import ResultStore
from keras_attdef.experiments.training import read_progress, train_resumable
from keras_attdef.results import provenance, read_record, write_experiment, write_record
from keras_attdef.results.report import experiment_table

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
    "atat_robust_init": ("ATAT with the madry variant as teacher, the student started from its weights", "atat",
                         {"teacher": "madry", "init_from_teacher": True}),
    # issue 28: maps that cannot vanish, on top of the loss that carries the robustness (PGD-7 / TRADES-7)
    "trades": ("TRADES (beta 6), the robust reference", "trades", {}),
    "trades_cam": ("TRADES on the class-activation head (small_cam_lenet)", "trades", {"model": "small_cam_lenet"}),
    "madry_cam": ("madry on the class-activation head (small_cam_lenet)", "madry", {"model": "small_cam_lenet"}),
    "attn_trades": ("TRADES + signed Grad-CAM, floored cosine, weight 1, ramped in", "attention_trades", {}),
    "attn_trades_w10": ("TRADES + signed Grad-CAM, floored cosine, weight 10", "attention_trades", {"weight": 10.0}),
    "attn_trades_cam": ("the same on the class-activation head (the map's mean is the logit)", "attention_trades",
                        {"model": "small_cam_lenet"}),
    "attn_trades_kl": ("TRADES + signed maps, spatial-softmax KL", "attention_trades", {"distance": "softmax_kl"}),
    "attn_trades_js": ("TRADES + signed maps, spatial-softmax JS (symmetric, bounded)", "attention_trades",
                       {"distance": "softmax_js"}),
    "attn_trades_softplus": ("TRADES + softplus-smoothed Grad-CAM, floored cosine", "attention_trades",
                             {"activation": "softplus"}),
    "attn_trades_contrastive": ("TRADES + cosine on the true and the most confusing class's maps, CAM head",
                                "attention_trades", {"contrastive": True, "model": "small_cam_lenet"}),
    "attn_trades_relu": ("TRADES + ReLU Grad-CAM, floored cosine (can a ReLU map still vanish?)", "attention_trades",
                         {"activation": "relu"}),
    "attn_trades_ig": ("TRADES + ReLU integrated-gradients maps (conv2, 4 intervals from black), floored cosine",
                       "attention_trades", {"activation": "relu", "method": "integrated_gradients"}),
    "attn_madry": ("madry + signed Grad-CAM, floored cosine, weight 1", "attention_trades", {"base": "madry"}),
    "attn_trades_joint": ("TRADES + cosine, the training attack also raising the map distance (weight 1)",
                          "attention_trades", {"joint_attack": 1.0}),
}
FAMILIES = {
    "aad": ["madry", "aad_pgd", "no_rect", "no_pres", "no_attention", "one_round", "kappa_0.5", "layer_conv1",
            "alpha_1", "aad_step_ll", "grad_x_activation"],
    "pairing": ["plain", "madry", "clean_and_adv", "alp", "at_alp", "at_alp_no_pair", "atat", "atat_no_transfer",
                "atat_no_pair", "atat_light_transfer", "atat_robust_teacher", "atat_robust_init"],
    "attention": ["madry", "trades", "attn_trades", "attn_trades_w10", "attn_trades_cam", "trades_cam",
                  "attn_trades_kl", "attn_trades_contrastive", "attn_madry", "attn_trades_relu", "madry_cam",
                  "attn_trades_joint", "attn_trades_js", "attn_trades_softplus", "attn_trades_ig"],
}
# Families whose variants get the extra stages (per-point outcomes, the map-adaptive attack, attention IoU).
ADAPTIVE_FAMILIES = ("attention",)


def variant_defense(name: str, eps: float, steps: int, warmup_steps: int, teachers: dict | None = None,
                    step_size: float | None = None):
    """The defence of variant `name` (see `VARIANTS`) at one attack budget.

    Args:
        name: a key of `VARIANTS`.
        eps: Linf budget.
        steps: PGD steps per round.
        warmup_steps: steps over which eps ramps up.
        teachers: trained classifiers by variant name, for the ATAT variants.
        step_size: PGD step (None: `2.5 * eps / steps`).
    """
    from keras_attdef import defenses

    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose from {sorted(VARIANTS)}.")
    _, preset, change = VARIANTS[name]
    change = {k: v for k, v in change.items() if k not in ("model", "init_from_teacher")}
    if preset == "plain":
        return defenses.plain()
    budget = {"eps": eps, "warmup_steps": warmup_steps}
    pgd = {**budget, "steps": steps, "step_size": step_size}
    if preset == "aad":
        return defenses.aad(**{"attack": "pgd", **change}, **pgd)
    if "teacher" in defenses.PRESETS[preset].options:
        teacher = (teachers or {}).get(change["teacher"])
        if teacher is None:
            raise ValueError(f"Variant {name!r} needs the trained {change['teacher']!r} variant as its teacher; "
                             "train that variant first (list it before this one).")
        return defenses.atat(teacher, **{k: v for k, v in change.items() if k != "teacher"}, **pgd)
    return defenses.get(preset, **change, **pgd)


def variant_builder(name: str, model: str, teachers: dict | None = None):
    """The function that builds variant `name`'s classifier: a fresh `model` (or the model the variant
    names), or, for an ATAT variant with `init_from_teacher`, a copy of its trained teacher (as the ATAT
    paper starts its student)."""
    from keras_attdef import models

    change = VARIANTS[name][2]
    build = models.get(change.get("model", model))
    if not change.get("init_from_teacher"):
        return build
    teacher = (teachers or {}).get(change["teacher"])
    if teacher is None:
        raise ValueError(f"Variant {name!r} starts from the trained {change['teacher']!r} variant; train it first.")

    def from_teacher():
        student = build()
        student.set_weights(teacher.get_weights())
        return student

    return from_teacher


def empty_map_share(model, x, y, layer: str | None = None, method: str = "grad_cam", batch_size: int = 500) -> float:
    """Share of images whose attention map (true class, at `layer`, by `method`) is zero everywhere.

    A network can satisfy AAD's attention terms vacuously: with every map zero, the clean and adversarial
    maps agree (L_p = 0) and the attention mask is empty (L_r has nothing to rectify).
    """
    from keras_attdef.attention.gradcam import empty_map_rate, grad_cam

    rates = [float(empty_map_rate(grad_cam(model, x[s:s + batch_size], layer, target=y[s:s + batch_size],
                                           method=method))) * len(y[s:s + batch_size])
             for s in range(0, len(y), batch_size)]
    return sum(rates) / len(y)


def _evaluate_variant(store, name, robust, defense, x, y, eps, version, seed, adaptive: bool) -> None:
    """Stores the cascade and the empty-map share; with `adaptive`, also per-point outcomes, the map-adaptive
    attack and the attention IoU (StepLL 0.15, as the reproduction)."""
    from keras_attdef import analysis
    from keras_attdef.attacks.spec import AttackSpec
    from keras_attdef.evaluation import autoattack, evaluate_robustness
    from keras_attdef.evaluation.adaptive import defense_maps, map_adaptive_attack

    base = robust.base_model

    def run_cascade():
        result = autoattack(robust, x, y, eps, version=version, seed=seed)
        return {"accuracy": result.accuracy, "seconds": result.seconds,
                "robust": "".join("1" if r else "0" for r in result.robust)}

    store.get(f"{name}/autoattack", run_cascade)
    maps = defense_maps(defense)  # the defence's own method and layer (Grad-CAM at the top layer if none)
    store.get(f"{name}/empty_maps", lambda: empty_map_share(base, x, y, maps["layer"], maps["method"]))
    if not adaptive:
        return

    def run_adaptive():
        report = evaluate_robustness(base, (x, y), {"adaptive": map_adaptive_attack(defense, eps)}, batch_size=250)
        return "".join("1" if c else "0" for c in report.correct["adaptive"])

    def run_iou():
        shift = analysis.attention_shift(base, x, y, AttackSpec("step_ll", eps=eps / 2))
        return {"succeeded": _iou_at_10(shift.succeeded), "failed": _iou_at_10(shift.failed)}

    store.get(f"{name}/adaptive", run_adaptive)
    store.get(f"{name}/iou", run_iou)


def _iou_at_10(values: dict):
    value = values.get(10, values.get("10"))
    return None if value is None or value != value else float(value)


def ablate(out="runs/ablate_aad", variants=tuple(FAMILIES["aad"]), model: str = "small_lenet", epochs: int = 2,
           steps: int = 3, step_size: float | None = None, eps: float = 0.3, batch_size: int = 100,
           lr: float = 1e-3, eval_size: int = 1000, version: str = "fast", train_size: int | None = None,
           data_dir=None, seed: int = 0, dataset: str = "mnist", verbose: int = 2, experiment: str = "ablation",
           results_dir=None, command: str = "keras-attdef ablate", adaptive: bool | None = None) -> str:
    """Trains every variant for `epochs` epochs, evaluates it and publishes one record each; returns the table.

    Args:
        out: output folder; reused to resume (per epoch, and per evaluated variant). A variant whose
            training and evaluation are both stored is not trained again, unless a later unfinished
            variant needs it as a teacher.
        variants: names from `VARIANTS` (a teacher before the ATAT variants that learn from it), e.g.
            `FAMILIES["pairing"]`; a variant may name its own model (`"model"` in its change).
        model: the model of the variants that name none (`models.REGISTRY`).
        epochs: epochs per variant (eps ramps up over the first).
        steps: PGD steps per round.
        step_size: PGD step (None: `2.5 * eps / steps`; Madry et al.'s protocol: 0.01).
        eps: Linf budget.
        batch_size: batch size.
        lr: Adam learning rate.
        eval_size: first N test digits evaluated.
        version: the AutoAttack-style cascade's version (`"fast"`: APGD-CE and APGD-T with 3 targets).
        train_size: first N training digits (None: all).
        data_dir: data folder (default `$KERAS_ATTDEF_DATA`).
        seed: seeds weights, batch order and attacks.
        dataset: `"mnist"`, or `"cifar10"`: the offline test copy split 8,000 / 2,000
            (`datasets.experiment_split`; not comparable with published CIFAR-10 figures).
        verbose: `fit` verbosity.
        experiment: the records' experiment name (`ablate_<family>` from the CLI); families in
            `ADAPTIVE_FAMILIES` also get the map-adaptive attack, attention IoU and paired sign tests.
        results_dir: where the records go (default `out/results`).
        command: the command recorded in their provenance.
        adaptive: also run the map-adaptive attack, attention IoU and paired sign tests (default: when
            `experiment` is `ablate_<family>` of a family in `ADAPTIVE_FAMILIES`).

    Returns:
        The Markdown table generated from the records (also written to `out/table.md`).
    """
    from keras_attdef import datasets

    out = Path(out)
    results_dir = Path(results_dir or out / "results")
    store = ResultStore(out / "results.json")
    x, y, x_test, y_test, data = datasets.experiment_split(dataset, data_dir, train_size, eval_size)
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    if adaptive is None:
        adaptive = experiment.removeprefix("ablate_") in ADAPTIVE_FAMILIES

    def stored(name):
        training = read_progress(out / name)
        figures = store.finished(name, training and training.get("run_id"), ("autoattack", "empty_maps"))
        return None if figures is None else (training, figures)

    needed = {VARIANTS[name][2]["teacher"] for name in variants if "teacher" in VARIANTS[name][2] and not stored(name)}
    teachers, records = {}, []
    setting = {"model": model, "epochs": epochs, "eps": eps, "version": version, "seed": seed, "n": len(y_test),
               "dataset": dataset, "data": data,
               "batch_size": batch_size, "lr": lr, "steps": steps, "step_size": step_size}
    for name in variants:
        if stored(name) is None or name in needed:
            defense = variant_defense(name, eps, steps, steps_per_epoch, teachers, step_size)
            build = variant_builder(name, model, teachers)
            robust, training = train_resumable(out / name, build, defense, x, y, epochs, lr, batch_size, seed,
                                               verbose=verbose)
            store.bind(name, training["run_id"])
            teachers[name] = robust.base_model
            _evaluate_variant(store, name, robust, defense, x_test, y_test, eps, version, seed, adaptive)
            # the code and command that made these figures, not those of a later run that only republishes them
            store.get(f"{name}/provenance", lambda: provenance(command, seed))
        # a store older than per-variant provenance: keep the one its published record carries
        store.get(f"{name}/provenance", lambda: _published_provenance(results_dir, experiment, name)
                  or provenance(command, seed))
        training, figures = stored(name)
        extras = {k: store.data.get(f"{name}/{k}") for k in ("adaptive", "iou", "provenance")}
        records.append(ablation_record(experiment, name, VARIANTS[name], training, {**figures, **extras},
                                       setting, command))
    return _publish(records, ablation_experiment(experiment, variants, setting, command, adaptive), results_dir, out)


def _published_provenance(results_dir: Path, experiment: str, name: str) -> dict | None:
    """The provenance of variant `name`'s record already in `results_dir`, if there is one."""
    path = results_dir / experiment / f"{name}.json"
    return read_record(path).get("provenance") if path.exists() else None


def _publish(records: list, meta: dict, results_dir: Path, out: Path) -> str:
    """Adds the paired tests, writes the experiment file, one record per variant and `out/table.md`."""
    add_paired_tests(records, ("madry", "trades"))
    # a "p vs" column wherever some variant could be paired with the reference on the same points
    tested = {key for r in records for key in r["metrics"] if key.startswith("p vs ")}
    meta["columns"] += [f"p vs {reference}" for reference in ("madry", "trades") if f"p vs {reference}" in tested]
    write_experiment(results_dir, meta)
    for record in records:
        write_record(results_dir, record)
    table = experiment_table(meta, records)
    (out / "table.md").write_text(table + "\n")
    return table
