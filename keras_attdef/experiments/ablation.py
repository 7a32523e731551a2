"""Why does AAD trail Madry? An ablation of AAD's terms at equal epochs (issue 11, item 3).

Each variant is `madry` or AAD with one part changed, trained for the same number of epochs on the same
digits in the same order, with the same attack budget per round; the table gives training time and the
accuracy under the AutoAttack-style cascade, so a term that helps or hurts shows in one column.

The variants (`AAD_VARIANTS`): the paper's AAD-PGD (alpha : beta : gamma = 2 : 1 : 2, two rounds, kappa the
mean of the map, Grad-CAM on the topmost conv layer) and, one change each: no rectification (beta 0, the
mask unused), no preservation (gamma 0), neither (what is left is two-round PGD training on clean and
adversarial digits), one round, a fixed kappa of 0.5, Grad-CAM on the first conv layer, StepLL rounds
(the paper's AAD), a lighter clean share (alpha 1 instead of 2), and gradient x activation maps in place
of Grad-CAM (which a network can make zero everywhere; the table's last column counts such maps).

Example:

>>> from keras_attdef.experiments.ablation import AAD_VARIANTS, variant_defense
>>> variant_defense("no_rect", eps=0.3, steps=3, warmup_steps=10).weights["rect"]
0.0
>>> sorted(AAD_VARIANTS)[:3]
['aad_pgd', 'aad_step_ll', 'alpha_1']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_attdef.experiments.store import ResultStore
from keras_attdef.experiments.training import train_resumable
from keras_attdef.tables import markdown_table, percent

# name -> (what changes, builder arguments of `defenses.aad` or None for madry)
AAD_VARIANTS = {
    "madry": ("PGD training on adversarial digits only (the reference)", None),
    "aad_pgd": ("the paper's AAD-PGD: 2 : 1 : 2, two PGD rounds, kappa mean, top conv", {}),
    "no_rect": ("no rectification (beta 0: the mask is not used)", {"beta": 0.0}),
    "no_pres": ("no preservation (gamma 0)", {"gamma": 0.0}),
    "no_attention": ("neither term: two-round PGD training on clean + adversarial digits", {"beta": 0.0, "gamma": 0.0}),
    "one_round": ("one PGD round instead of two", {"rounds": 1}),
    "kappa_0.5": ("kappa 0.5 instead of the map's mean", {"kappa": 0.5}),
    "layer_conv1": ("Grad-CAM on conv1 instead of the topmost conv layer", {"layer": "conv1"}),
    "alpha_1": ("classification weight alpha 1 instead of 2", {"alpha": 1.0}),
    "aad_step_ll": ("StepLL rounds of eps / 2 (the paper's AAD) instead of PGD", {"attack": "step_ll"}),
    "grad_x_activation": ("attention maps by gradient x activation instead of Grad-CAM",
                          {"cam_method": "grad_x_activation"}),
}


def variant_defense(name: str, eps: float, steps: int, warmup_steps: int):
    """The defence of variant `name` (see `AAD_VARIANTS`) at one attack budget."""
    from keras_attdef import defenses

    if name not in AAD_VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose from {sorted(AAD_VARIANTS)}.")
    change = AAD_VARIANTS[name][1]
    if change is None:
        return defenses.madry(eps=eps, step_size=None, steps=steps, warmup_steps=warmup_steps)
    return defenses.aad(**{"attack": "pgd", **change}, eps=eps, steps=steps, warmup_steps=warmup_steps)


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


def ablate_aad(out="runs/ablate_aad", variants=tuple(AAD_VARIANTS), model: str = "small_lenet", epochs: int = 2,
               steps: int = 3, eps: float = 0.3, batch_size: int = 100, lr: float = 1e-3, eval_size: int = 1000,
               version: str = "fast", train_size: int | None = None, data_dir=None, seed: int = 0,
               verbose: int = 2) -> str:
    """Trains every variant for `epochs` epochs and evaluates it; writes `out/table.md` and returns it.

    Args:
        out: output folder; reused to resume (per epoch, and per evaluated variant).
        variants: names from `AAD_VARIANTS`.
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

    build = {"small_lenet": models.small_lenet, "lenet": models.lenet}[model]
    out = Path(out)
    store = ResultStore(out / "results.json")
    x, y = datasets.load("mnist", "train", data_dir, limit=train_size)
    x_test, y_test = datasets.load("mnist", "test", data_dir, limit=eval_size)
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    rows = []
    for name in variants:
        defense = variant_defense(name, eps, steps, warmup_steps=steps_per_epoch)
        robust, training = train_resumable(out / name, build, defense, x, y, epochs, lr, batch_size, seed,
                                           verbose=verbose)
        store.bind(name, training["run_id"])

        def evaluate(robust=robust):
            result = autoattack(robust, x_test, y_test, eps, version=version, seed=seed)
            return {"accuracy": result.accuracy, "seconds": result.seconds}

        figures = store.get(f"{name}/autoattack", evaluate)
        empty = store.get(f"{name}/empty_maps", lambda robust=robust, defense=defense: empty_map_share(
            robust.base_model, x_test, y_test, getattr(defense, "layer", None),
            getattr(defense, "cam_method", "grad_cam")))
        accuracy = figures["accuracy"]
        rows.append([name, AAD_VARIANTS[name][0], f"{training['seconds']:.0f}",
                     percent(training["logs"][-1].get("adv_accuracy", float("nan"))),
                     percent(accuracy["clean"]), percent(accuracy["after APGD-CE"]), percent(accuracy["robust"]),
                     percent(empty, 1)])
    head = ["variant", "change", "train s", "train adv acc (last epoch)", "clean", "after APGD-CE",
            f"AutoAttack-style ({version})", "empty attention maps"]
    note = (f"{model}, {epochs} epochs, batch {batch_size}, Adam {lr:g}, seed {seed}; Linf eps {eps:g}, PGD-{steps} "
            f"(step 2.5 eps / {steps}) per round, eps ramped over epoch 1; first {len(y_test)} test digits. Empty "
            "attention maps: share of those digits whose true-class map (the variant's method and layer; Grad-CAM "
            "at the topmost conv layer for madry) is zero everywhere.")
    table = markdown_table(head, rows) + "\n\n" + note
    (out / "table.md").write_text(table + "\n")
    return table
