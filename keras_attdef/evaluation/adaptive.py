"""The adaptive attack on a defence with a map term, and the check that its map term gives it a gradient.

An attention defence is trained to keep its maps in place under attack. Judging it only with attacks on
the classifier's loss misses examples that fool it by also moving its attention, so `map_adaptive_attack`
raises cross-entropy plus the defence's own map distance (its method, activation, layer and distance).

That attack is only as strong as the map term's gradient. ReLU Grad-CAM maps that are zero everywhere
(what AAD's preservation term trains towards) have a zero input gradient: the map part of the objective is
then silent and the "adaptive" row is plain PGD on cross-entropy. `map_gradient_check` measures this
and raises the `map_term_hides_gradient` flag; `evaluate` runs both for a `RobustModel` whose defence has
a map term.

Example:

>>> import numpy as np
>>> from keras_attdef import AttackSpec, defenses, models
>>> from keras_attdef.evaluation.adaptive import map_adaptive_attack, map_gradient_check
>>> defense = defenses.get("attention_trades", eps=0.3, steps=3)
>>> map_adaptive_attack(defense, eps=0.3).name
'map_pgd'
>>> x = np.random.default_rng(0).random((4, 28, 28, 1), dtype="float32")
>>> map_gradient_check(models.small_cam_lenet(), defense, x, np.arange(4), eps=0.3).raised
False
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_attdef.attacks.attention_augmented import map_deviation
from keras_attdef.attacks.engine import objective_gradient
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.evaluation.audit import ZERO_GRADIENT_SHARE, Flag
from keras_attdef.inputs import check_eps

ADAPTIVE_STEPS = 50
ADAPTIVE_ROW = f"map-adaptive PGD-{ADAPTIVE_STEPS}"
# What the adaptive attack compares when a defence has no map term of its own: signed Grad-CAM, the
# floored cosine (the options that cannot vanish).
DEFAULT_MAPS = {"distance": "cosine", "method": "grad_cam", "activation": "none", "layer": None}


def has_map_term(defense) -> bool:
    """Whether `defense` trains on attention maps (an `AttentionRegularized`, AAD or ATAT defence)."""
    return _own_maps(defense) is not None


def map_term_defense(model):
    """The defence of a `RobustModel` when it has a map term (what `evaluate` adds the adaptive row for), else None."""
    defense = getattr(model, "defense", None)
    return defense if has_map_term(defense) else None


def defense_maps(defense) -> dict:
    """The map options (`distance`, `method`, `activation`, `layer`) an adaptive attack on `defense` uses.

    `AttentionRegularized` names all four; AAD compares ReLU Grad-CAM maps (its `cam_method`) with its
    preservation distance; ATAT compares ReLU Grad-CAM maps with its transfer distance. Other defences get
    `DEFAULT_MAPS`.
    """
    return _own_maps(defense) or dict(DEFAULT_MAPS)


def _own_maps(defense) -> dict | None:
    """`defense`'s map options, or None when it has no map term."""
    if hasattr(defense, "maps"):
        return {key: getattr(defense, key) for key in DEFAULT_MAPS}
    if hasattr(defense, "cam_method"):
        return {"distance": defense.pres_distance, "method": defense.cam_method, "activation": "relu",
                "layer": defense.layer}
    if hasattr(defense, "teacher_layer"):
        return {"distance": defense.distance, "method": "grad_cam", "activation": "relu", "layer": defense.layer}
    return None


def map_adaptive_attack(defense, eps: float, steps: int = ADAPTIVE_STEPS, weight: float = 1.0,
                        norm: str = "linf") -> AttackSpec:
    """PGD raising cross-entropy plus `defense`'s own map distance between clean and adversarial maps.

    Args:
        defense: the defence the model was trained with (None or a defence without a map term: signed
            Grad-CAM and the floored cosine).
        eps: Linf budget.
        steps: PGD steps.
        weight: weight of the map distance beside cross-entropy.
        norm: `"linf"` or `"l2"`.

    Returns:
        An `AttackSpec("map_pgd", ...)` for `evaluate_robustness` or `compile_attack`.
    """
    return AttackSpec("map_pgd", eps=check_eps(eps), steps=steps, weight=weight, norm=norm, **defense_maps(defense))


def map_gradient_check(model, defense, x, y, eps: float, seed: int = 0, batch_size: int = 256) -> Flag:
    """Flags a map term that gives the adaptive attack no gradient.

    At a uniformly random point of the eps-ball around each input (at the clean point the distance is at
    its minimum), takes the input gradient of `defense`'s map distance between the clean and the moved
    maps. A share of all-zero gradients above `audit.ZERO_GRADIENT_SHARE` raises the flag.

    Args:
        model: the classifier (logits).
        defense: the defence it was trained with (see `defense_maps`).
        x: images in [0, 1].
        y: integer labels.
        eps: Linf budget.
        seed: seeds the random points.
        batch_size: the first this many points are checked.

    Returns:
        A `Flag` (`raised`, `detail`).
    """
    options = defense_maps(defense)
    x = tf.constant(np.asarray(x[:batch_size]), tf.float32)
    labels = tf.constant(np.asarray(y[:batch_size]), tf.int32)
    deviation = map_deviation(model, x, labels, **options)
    noise = tf.random.stateless_uniform(tf.shape(x), (seed, 0), -eps, eps)
    grad = objective_gradient(deviation, tf.clip_by_value(x + noise, 0.0, 1.0))
    zero = np.all(np.reshape(np.asarray(grad), (len(x), -1)) == 0, axis=1)
    detail = (f"the map term's input gradient is zero on {100 * zero.mean():.1f}% of {len(x)} points "
              f"({options['activation']} {options['method']} maps, {options['distance']})")
    if zero.mean() > ZERO_GRADIENT_SHARE:
        detail += (f"; there {ADAPTIVE_ROW} is PGD on cross-entropy alone (maps that are zero everywhere give no "
                   "gradient): judge the defence by the cascade and audit its maps with signed ones")
    return Flag(bool(zero.mean() > ZERO_GRADIENT_SHARE), detail)
