"""Defences that pair clean and adversarial outputs: ALP (logit pairing) and TRADES (KL)."""
from __future__ import annotations

import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.attacks.objectives import kl_divergence
from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense
from keras_attdef.losses import check_distance, distance, replica_mean


def trades_attack(model, x, attack, scale=None, extra_objective=None):
    """TRADES' inner attack: Linf PGD raising KL(f(x) || f(x_adv)) from `x + 0.001 * N(0, 1)` (no labels).

    Args:
        model: the classifier.
        x: the clean batch.
        attack: an `AttackSpec` giving eps, step_size (default eps / 4), steps (default 10) and the clip range.
        scale: the budget ramp's fraction of eps and step, or None.
        extra_objective: a per-sample term added to the KL (a joint attack), or None.
    """
    kwargs = attack.kwargs
    eps, step_size = kwargs["eps"], kwargs.get("step_size", kwargs["eps"] / 4)
    if scale is not None:
        eps, step_size = eps * scale, step_size * scale
    clean = tf.stop_gradient(tf.nn.softmax(model(x, training=False)))
    clean_log = tf.math.log(clean + 1e-12)

    def objective(x_adv):
        adv_log = tf.nn.log_softmax(model(x_adv, training=False))
        kl = tf.reduce_sum(clean * (clean_log - adv_log), axis=-1)
        return kl if extra_objective is None else kl + extra_objective(x_adv)

    low, high = kwargs.get("clip_min", 0.0), kwargs.get("clip_max", 1.0)
    init = engine.project(x + 0.001 * tf.random.normal(tf.shape(x)), x, eps, "linf", low, high)
    return engine.maximize(objective, x, eps, step_size, kwargs.get("steps", 10), "linf", init=init,
                           clip_min=low, clip_max=high)


@register_defense
class LogitPairing(Defense):
    """Adversarial logit pairing (Kannan et al., 2018).

    Loss: the compiled loss on a 50/50 mix of clean and adversarial inputs, plus
    `weights["pair"] * distance(f(x), f(x_adv))`.

    Args:
        distance: `"mse"` (default, as Kannan et al.'s code), `"l2"`, `"sq_l2"` or `"l1"`.
    """

    name = "alp"
    term_names = ("pair",)
    default_weights = {"pair": 0.5}

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0, distance: str = "mse"):
        super().__init__(attack, weights, warmup_steps)
        self.distance = check_distance(distance)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        clean_logits = model(x, training=True)
        adv_logits = model(adv, training=True)
        pair = replica_mean(distance(clean_logits, adv_logits, self.distance))
        return DefenseOutput.stacked(tf.concat([clean_logits, adv_logits], 0), y, 2, {"pair": pair},
                                     clean_logits=clean_logits, adv_logits=adv_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "distance": self.distance}


@register_defense
class Trades(Defense):
    """TRADES (Zhang et al., 2019): `CE(f(x), y) + beta * KL(f(x) || f(x_adv))`.

    The attack raises the KL term from `x + 0.001 * N(0, 1)` with Linf PGD (it needs no labels); its
    eps, step_size and steps come from `attack`.
    """

    name = "trades"
    term_names = ("kl",)
    default_weights = {"kl": 6.0}

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0):
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("TRADES needs an attack spec for its budget (eps, step_size, steps).")

    def perturb(self, model, x, y, scale=None):
        return trades_attack(model, x, self.attack, scale)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        clean_logits = model(x, training=True)
        adv_logits = model(adv, training=True)
        kl = replica_mean(kl_divergence(clean_logits, adv_logits))
        return DefenseOutput(clean_logits, y, {"kl": kl}, clean_logits=clean_logits, adv_logits=adv_logits)
