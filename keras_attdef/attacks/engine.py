"""Projected gradient ascent: the one loop every gradient attack in this package runs."""
from __future__ import annotations

import tensorflow as tf

from keras_attdef.inputs import check_eps
from keras_attdef.attacks.objectives import Objective

NORMS = ("linf", "l2")
# Loops up to this many steps are unrolled: graph rewrites such as oneDNN fusions do not reach into
# tf.while_loop bodies, so short unrolled loops run faster (benchmarks/RESULTS.md).
# Longer loops stay a while_loop to keep graphs and XLA compile times small.
UNROLL_MAX_STEPS = 20
_TINY = 1e-12


def per_sample_norm(t):
    """L2 norm of each sample, shaped to broadcast against the batch `(batch, 1, ..., 1)`."""
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=tf.range(1, tf.rank(t)), keepdims=True) + _TINY)


def expand_to(mask, x):
    """A per-sample `(batch,)` tensor reshaped to broadcast against the batch `x`."""
    return tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(x) - 1], tf.int32)], 0))


def project(x_adv, x, eps, norm: str, clip_min: float, clip_max: float):
    """Projects `x_adv` onto the `norm` ball of radius `eps` around `x`, then into [clip_min, clip_max].

    Clipping after projecting keeps the point inside the ball: with `x` in the box, clipping only
    shrinks each coordinate of the perturbation.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        delta = delta * tf.minimum(1.0, eps / per_sample_norm(delta))
    return tf.clip_by_value(x + delta, clip_min, clip_max)


def random_start(x, eps, norm: str, clip_min: float, clip_max: float):
    """A uniform point of the Linf ball, or a random direction at a uniform radius of the L2 ball."""
    if norm == "linf":
        delta = tf.random.uniform(tf.shape(x), -1.0, 1.0, dtype=x.dtype) * eps
    else:
        direction = tf.random.normal(tf.shape(x), dtype=x.dtype)
        direction = direction / per_sample_norm(direction)
        radius = tf.random.uniform(tf.concat([tf.shape(x)[:1], tf.ones([tf.rank(x) - 1], tf.int32)], 0),
                                   dtype=x.dtype)
        delta = direction * radius * eps
    return tf.clip_by_value(x + delta, clip_min, clip_max)


def ascent_direction(grad, norm: str):
    """Steepest-ascent direction of unit norm: sign for Linf, normalised gradient for L2."""
    if norm == "linf":
        return tf.sign(grad)
    return grad / per_sample_norm(grad)


def objective_gradient(objective: Objective, x_adv):
    """Gradient of each sample's objective w.r.t. its own input (objectives are per-sample sums).

    A model with no gradient path to its input (e.g. a `stop_gradient` quantiser) gives zeros, not an
    error: the attack then stays where it is, and the masking audit says why.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x_adv)
        total = tf.reduce_sum(objective(x_adv))
    return tape.gradient(total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def maximize(
    objective: Objective,
    x,
    eps,
    step_size,
    steps: int,
    norm: str = "linf",
    init=None,
    project_every_step: bool = True,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
):
    """Projected gradient ascent of a per-sample objective from `init` (default `x`).

    Args:
        objective: maps an input batch to the (batch,) values to raise.
        x: the clean batch, centre of the ball.
        eps: ball radius (float or scalar tensor, e.g. a ramped budget).
        step_size: step length in the ball's norm.
        steps: number of steps (a Python int; unrolled up to `UNROLL_MAX_STEPS`, else a `tf.while_loop`:
            both trace under XLA and inside Keras steps, which run without AutoGraph).
        norm: `"linf"` or `"l2"`.
        init: starting point, already inside the ball.
        project_every_step: project after each step (PGD) or only once at the end.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The adversarial batch, with no gradient path back to the model.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {NORMS}.")
    check_eps(eps)
    check_eps(step_size, "step_size")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    x = tf.stop_gradient(x)
    eps = tf.cast(eps, x.dtype)
    step_size = tf.cast(step_size, x.dtype)
    x_adv = x if init is None else tf.stop_gradient(tf.cast(init, x.dtype))

    def body(i, x_adv):
        moved = x_adv + step_size * ascent_direction(objective_gradient(objective, x_adv), norm)
        if project_every_step:
            moved = project(moved, x, eps, norm, clip_min, clip_max)
        else:
            moved = tf.clip_by_value(moved, clip_min, clip_max)
        return i + 1, tf.stop_gradient(moved)

    if int(steps) <= UNROLL_MAX_STEPS:
        for i in range(int(steps)):
            _, x_adv = body(i, x_adv)
    else:
        _, x_adv = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x_adv),
                                 maximum_iterations=int(steps))
    return tf.stop_gradient(project(x_adv, x, eps, norm, clip_min, clip_max))


def keep_best(objective: Objective, candidates):
    """Per sample, the candidate batch with the highest objective (restarts keep the worst case)."""
    best = candidates[0]
    best_value = objective(best)
    for candidate in candidates[1:]:
        value = objective(candidate)
        better = value > best_value
        best = tf.where(expand_to(better, best), candidate, best)
        best_value = tf.where(better, value, best_value)
    return best
