"""Gradient attacks: functions of (model, x, y, ...) that return an adversarial batch.

All of them run the model in inference mode, keep results inside the eps ball and
[clip_min, clip_max], and work eagerly, inside `tf.function` and with `jit_compile=True`.
`extra_objective` (a function of the adversarial batch returning one value per sample) is added
to what the attack raises; the attention-augmented (A3) attacks use it.

Example:

>>> import numpy as np
>>> from keras_attdef import attacks, models
>>> net = models.lenet()
>>> x = np.random.rand(4, 28, 28, 1).astype("float32"); y = np.array([0, 1, 2, 3])
>>> x_adv = attacks.pgd(net, x, y, eps=0.3, step_size=0.01, steps=10)
>>> bool(np.abs(x_adv - x).max() <= 0.3 + 1e-6)
True
"""
from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.inputs import check_eps, check_labels, check_range
from keras_attdef.attacks.objectives import (
    Objective, classification_objective, least_likely, least_likely_objective,
)
from keras_attdef.attacks.registry import register

ExtraObjective = Optional[Callable[[tf.Tensor], tf.Tensor]]


def default_step_size(eps, steps: int):
    """The PGD step used wherever none is given: `2.5 * eps / steps` (Madry et al.'s rule of thumb: the
    iterate can cross the ball in fewer than half the steps)."""
    return 2.5 * eps / steps


def _with_extra(objective: Objective, extra: ExtraObjective) -> Objective:
    if extra is None:
        return objective
    return lambda x_adv: objective(x_adv) + extra(x_adv)


def _prepare(model, x, y, eps, clip_min, clip_max):
    check_eps(eps)
    x = check_range(x, clip_min, clip_max)
    if y is not None:
        y = check_labels(y, x, model.output_shape[-1] if hasattr(model, "output_shape") else None)
    return x, y


@register("fgsm")
def fgsm(model, x, y, eps: float, targeted: bool = False, loss: str = "ce", clip_min: float = 0.0,
         clip_max: float = 1.0, extra_objective: ExtraObjective = None):
    """Fast gradient sign method (Goodfellow et al., 2015): one signed-gradient step of size eps.

    Args:
        eps: Linf budget (and the step). The other arguments are `pgd`'s: `targeted` steps towards `y`
            instead of away from it, `loss` is `"ce"` or `"margin"`.

    Returns:
        The adversarial batch.
    """
    x, y = _prepare(model, x, y, eps, clip_min, clip_max)
    objective = _with_extra(classification_objective(model, y, loss, targeted), extra_objective)
    return engine.maximize(objective, x, eps, eps, 1, "linf", clip_min=clip_min, clip_max=clip_max)


@register("step_ll")
def step_ll(model, x, y=None, eps: float = 0.15, clip_min: float = 0.0, clip_max: float = 1.0,
            extra_objective: ExtraObjective = None):
    """StepLL (Kurakin et al., 2017; AAD eq. 3): one step towards the least-likely class.

    `x_adv = x - eps * sign(grad_x CE(f(x), y_LL))`. `y` is accepted for a uniform signature and unused.
    """
    x, _ = _prepare(model, x, None, eps, clip_min, clip_max)
    objective = _with_extra(least_likely_objective(model), extra_objective)  # target and loss in one pass
    return engine.maximize(objective, x, eps, eps, 1, "linf", clip_min=clip_min, clip_max=clip_max)


@register("r_step_ll")
def r_step_ll(model, x, y=None, eps: float = 0.15, alpha: float | None = None, clip_min: float = 0.0,
              clip_max: float = 1.0, extra_objective: ExtraObjective = None):
    """R+StepLL (Tramèr et al., 2018): a random signed step of `alpha`, then StepLL of `eps - alpha`.

    Args:
        alpha: size of the random step, default `eps / 2`; must not exceed eps.
    """
    alpha = eps / 2 if alpha is None else alpha
    check_eps(alpha, "alpha")
    if isinstance(alpha, (int, float)) and isinstance(eps, (int, float)) and alpha > eps:
        raise ValueError(f"alpha ({alpha}) must not exceed eps ({eps}).")
    x, _ = _prepare(model, x, None, eps, clip_min, clip_max)
    start = tf.clip_by_value(x + alpha * tf.sign(tf.random.normal(tf.shape(x), dtype=x.dtype)), clip_min, clip_max)
    objective = _with_extra(least_likely_objective(model), extra_objective)  # the target of `start`
    return engine.maximize(objective, x, eps, eps - alpha, 1, "linf", init=start,
                           clip_min=clip_min, clip_max=clip_max)


@register("iter_ll")
def iter_ll(model, x, y=None, eps: float = 0.3, step_size: float = 0.15, rounds: int = 2,
            project_each_round: bool = True, clip_min: float = 0.0, clip_max: float = 1.0,
            extra_objective: ExtraObjective = None):
    """Iter-LL (Kurakin et al., 2017): `rounds` StepLL steps towards the clean image's least-likely class.

    Args:
        eps: total Linf budget; the result always lies inside it.
        step_size: the step of each round.
        rounds: number of StepLL rounds (AAD's two-round selection uses 2).
        project_each_round: project back to the eps ball after every round (True) or only at the end.
    """
    x, _ = _prepare(model, x, None, eps, clip_min, clip_max)
    target = least_likely(model, x)
    objective = _with_extra(classification_objective(model, target, "ce", targeted=True), extra_objective)
    return engine.maximize(objective, x, eps, step_size, rounds, "linf", project_every_step=project_each_round,
                           clip_min=clip_min, clip_max=clip_max)


@register("pgd")
def pgd(
    model,
    x,
    y,
    eps: float,
    step_size: float | None = None,
    steps: int = 10,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    targeted: bool = False,
    loss: str = "ce",
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    extra_objective: ExtraObjective = None,
):
    """Projected gradient descent (Madry et al., 2018), Linf or L2, with random restarts.

    Args:
        model: a Keras model returning logits.
        x: clean batch in [clip_min, clip_max].
        y: true labels, or target labels when `targeted`.
        eps: budget in `norm`.
        step_size: step per iteration; default `2.5 * eps / steps`.
        steps: iterations per restart.
        norm: `"linf"` or `"l2"`.
        random_start: start each restart at a random point of the ball.
        restarts: independent runs; each sample keeps the run with the highest objective.
        targeted: reach class `y` instead of leaving it.
        loss: `"ce"` or `"margin"`.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        extra_objective: added to the objective (see module doc).

    Returns:
        The adversarial batch.
    """
    x, y = _prepare(model, x, y, eps, clip_min, clip_max)
    if int(restarts) < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}.")
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    objective = _with_extra(classification_objective(model, y, loss, targeted), extra_objective)
    candidates = []
    for _ in range(int(restarts)):
        init = engine.random_start(x, eps, norm, clip_min, clip_max) if random_start else None
        candidates.append(engine.maximize(objective, x, eps, step_size, steps, norm, init=init,
                                          clip_min=clip_min, clip_max=clip_max))
    return candidates[0] if len(candidates) == 1 else engine.keep_best(objective, candidates)


@register("ifgsm")
def ifgsm(model, x, y, eps: float, step_size: float | None = None, steps: int = 10, targeted: bool = False,
          loss: str = "ce", clip_min: float = 0.0, clip_max: float = 1.0,
          extra_objective: ExtraObjective = None):
    """Iterative FGSM / BIM (Kurakin et al., 2017): Linf PGD from the clean point, default step eps/steps."""
    step_size = eps / steps if step_size is None else step_size
    return pgd(model, x, y, eps, step_size, steps, "linf", random_start=False, targeted=targeted, loss=loss,
               clip_min=clip_min, clip_max=clip_max, extra_objective=extra_objective)
