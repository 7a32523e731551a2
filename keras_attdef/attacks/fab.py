"""FAB-T: the targeted fast adaptive boundary attack (Croce and Hein, 2020, arXiv:1907.02044), Linf and L2.

A minimal-norm attack. At the current point x_i, the decision boundary between the label y and the target
t is linearised: `g(z) ~ g(x_i) + w . (z - x_i)` with `g = z_y - z_t` and `w` its gradient. Both x_i and the
clean x are projected (minimal `norm` change, staying in the input box) onto the hyperplane `g = 0`,
giving steps d_i and d_0, and the next point mixes the two, biased back towards x:

    x_{i+1} = clip((1 - a) (x_i + eta d_i) + a (x + eta d_0)),  a = min(|d_i| / (|d_i| + |d_0|), alpha_max)

When x_{i+1} is misclassified, it is kept if it is the smallest change found so far, and the point is
pulled back towards x (`x + beta (x_{i+1} - x)`) to search for a smaller one. `fab_t` runs this towards
each of the `num_targets` classes ranked next after the top one and returns, per sample, the smallest
adversarial change found if it lies within `eps`, else the clean input. As in AutoAttack, a target runs
only on the samples no earlier target fooled within `eps` (`skip_fooled=False` runs every target on every
sample, for the minimal change over all targets).

The projection onto `{z : w . z = c} and the box` has the form `d = clip(r s, lo, hi)` with `s` the
steepest direction of the norm (`sign(w)` for Linf, `w` for L2, signed towards `c`), and `w . d`
non-decreasing and concave in r: r is found by Newton's method from the unboxed step, exact once no
further coordinate meets the box (a few passes; `benchmarks/fab_projection.py`). Where the box makes the hyperplane
unreachable, the step goes to the box's best corner, as in the reference implementation.

Example:

>>> import numpy as np
>>> from keras_attdef import attacks, datasets, models
>>> x, y = datasets.load("mnist", "test", limit=4)
>>> result = attacks.fab_t(models.lenet(), x, y, eps=0.3, steps=5, num_targets=2, return_result=True)
>>> result.distance.shape, bool(np.abs(result.x_adv - x).max() <= 0.3 + 1e-6)  # distance: NaN where none found
((4,), True)
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.inputs import check_eps, check_labels, check_range
from keras_attdef.attacks.registry import register
from keras_attdef.attacks.result import AttackResult

_TINY = 1e-12
_NEWTON_STEPS = 50  # a cap; a few suffice (see project_on_hyperplane)
_NEWTON_TOLERANCE = 1e-6  # relative to the plane's offset
_FAR = 1e30  # a step past every bound (finite: 0 * inf would be NaN)


def _norm(delta, norm):
    flat = tf.reshape(delta, [tf.shape(delta)[0], -1])
    return tf.reduce_max(tf.abs(flat), -1) if norm == "linf" else tf.norm(flat, axis=-1)


def project_on_hyperplane(point, w, c, norm: str, clip_min: float, clip_max: float):
    """The smallest step `d` (in `norm`) with `w . d = c` per row and `point + d` in the box, or the box's best
    corner towards the hyperplane where it is out of reach. Rows are flattened samples `(batch, features)`.

    The step is `clip(r * direction, box)` for the smallest `r` that reaches `c`. `w . d(r)` is concave and
    piecewise linear in `r` (each coordinate stops when it meets the box), so Newton's method started from
    the unboxed step, which is below the root, climbs to it without overshooting and lands on it once no
    further coordinate saturates: a few passes over the features where doubling and bisection took 40.
    """
    sign = tf.where(c >= 0, 1.0, -1.0)[:, None]
    direction = sign * (tf.sign(w) if norm == "linf" else w)
    low, high = clip_min - point, clip_max - point
    room = tf.where(direction > 0, high, -low)  # how far each coordinate may go along its direction
    speed = tf.abs(direction)
    rate = tf.abs(w) * speed  # d (w . d) / dr of a coordinate while it is free
    target = tf.abs(c)

    def reach_and_slope(r):
        moved = r[:, None] * speed
        return (tf.reduce_sum(tf.abs(w) * tf.minimum(moved, tf.maximum(room, 0.0)), -1),
                tf.reduce_sum(tf.where(moved < room, rate, 0.0), -1))

    def newton(i, r, done):
        reach, slope = reach_and_slope(r)
        gap = target - reach
        reached = gap <= _NEWTON_TOLERANCE * target
        stuck = tf.logical_and(tf.logical_not(reached), slope <= 0)  # out of reach: every coordinate to its bound
        r = tf.where(reached, r, tf.where(stuck, _FAR, r + gap / tf.maximum(slope, _TINY)))
        return i + 1, r, tf.logical_or(reached, stuck)

    r = target / (tf.reduce_sum(rate, -1) + _TINY)  # the step without the box: the box can only make r larger
    _, r, _ = tf.while_loop(lambda i, r, done: tf.logical_and(i < _NEWTON_STEPS, tf.logical_not(tf.reduce_all(done))),
                            newton, (tf.constant(0), r, tf.zeros_like(r, tf.bool)))
    return tf.clip_by_value(r[:, None] * direction, low, high)


@register("fab_t")
def fab_t(model, x, y, eps: float, steps: int = 100, norm: str = "linf", num_targets: int = 9,
          alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, clip_min: float = 0.0,
          clip_max: float = 1.0, return_result: bool = False, skip_fooled: bool = True):
    """FAB-T on a batch; see the module doc.

    Args:
        model: a Keras model returning logits.
        x: clean batch in [clip_min, clip_max].
        y: true labels.
        eps: the budget: changes larger than this count as failures (the clean input is returned).
        steps: iterations per target class (100 in AutoAttack).
        norm: `"linf"` or `"l2"`.
        num_targets: target classes, the ones ranked 2nd, 3rd, ... on the clean input (9 in AutoAttack).
        alpha_max: largest weight of the step from the clean input.
        eta: overshoot of each projection.
        beta: pull-back towards the clean input after a success.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        return_result: return an `AttackResult` (eagerly only) instead of the batch: `distance` holds the
            smallest adversarial change found per sample (NaN where none; beyond `eps` it is no success).
        skip_fooled: run each target only on the samples no earlier target fooled within `eps` (AutoAttack's
            behaviour; the robust accuracy is the same, and a fooled sample's norm is then its first
            success's rather than the smallest over all targets).

    Returns:
        The adversarial batch, or an `AttackResult`.
    """
    check_eps(eps)
    if norm not in engine.NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {engine.NORMS}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    x = check_range(x, clip_min, clip_max)
    y = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    num_classes = int(model.output_shape[-1])
    num_targets = min(int(num_targets), num_classes - 1)
    if num_targets < 1:
        raise ValueError("FAB-T needs at least two classes.")
    search = functools.partial(_fab_search, model, eps=eps, steps=int(steps), norm=norm, num_targets=num_targets,
                               alpha_max=alpha_max, eta=eta, beta=beta, clip_min=clip_min, clip_max=clip_max,
                               skip_fooled=skip_fooled)
    if not tf.executing_eagerly():
        if return_result:
            raise ValueError("fab_t(return_result=True) runs eagerly only; call it outside tf.function.")
        return search(x, y)[0]
    x_adv, norms = tf.function(search, autograph=False)(x, y)  # hundreds of small ops per step: one graph
    if not return_result:
        return x_adv
    norms = norms.numpy()
    return AttackResult(x_adv.numpy(), norms <= eps * (1 + 1e-6),
                        distance=np.where(np.isfinite(norms), norms, np.nan))


def _fab_search(model, x, y, eps, steps, norm, num_targets, alpha_max, eta, beta, clip_min, clip_max, skip_fooled):
    """`(x_adv, norms)`: FAB-T's best point per sample (the clean one beyond `eps`) and its change's size."""
    shape = tf.shape(x)
    flat_x = tf.reshape(x, [shape[0], -1])
    ranked = tf.argsort(model(x, training=False), axis=-1, direction="DESCENDING")
    predictions = tf.argmax(model(x, training=False), -1, output_type=tf.int32)
    # a sample already misclassified needs no change
    best_norm = tf.where(tf.equal(predictions, y), tf.fill([shape[0]], float("inf")), 0.0)
    best = flat_x
    for k in range(1, num_targets + 1):
        if not skip_fooled:
            best, best_norm = _fab_run(model, flat_x, shape, y, ranked[:, k], best, best_norm, steps, norm,
                                       alpha_max, eta, beta, clip_min, clip_max)
            continue
        todo = tf.where(best_norm > eps * (1 + 1e-6))[:, 0]
        best, best_norm = tf.cond(  # a conv on zero samples fails under oneDNN: skip an empty batch
            tf.size(todo) > 0,
            lambda: _fab_rows(model, flat_x, shape, y, ranked[:, k], best, best_norm, todo, steps, norm,
                              alpha_max, eta, beta, clip_min, clip_max),
            lambda: (best, best_norm))
    within = best_norm <= eps * (1 + 1e-6)
    result = tf.reshape(tf.where(within[:, None], best, flat_x), shape)
    return tf.stop_gradient(result), best_norm


def _fab_rows(model, flat_x, shape, y, targets, best, best_norm, todo, steps, norm, alpha_max, eta, beta,
              clip_min, clip_max):
    """One target on the rows `todo` only; returns `best` and `best_norm` with those rows updated."""
    rows = todo[:, None]
    sub_shape = tf.concat([tf.shape(todo)[:1], shape[1:]], 0)
    sub_best, sub_norm = _fab_run(model, tf.gather(flat_x, todo), sub_shape, tf.gather(y, todo),
                                  tf.gather(targets, todo), tf.gather(best, todo), tf.gather(best_norm, todo), steps,
                                  norm, alpha_max, eta, beta, clip_min, clip_max)
    return tf.tensor_scatter_nd_update(best, rows, sub_best), tf.tensor_scatter_nd_update(best_norm, rows, sub_norm)


def _fab_run(model, flat_x, shape, y, targets, best, best_norm, steps, norm, alpha_max, eta, beta, clip_min,
             clip_max):
    def gap_and_gradient(flat):
        with tf.GradientTape() as tape:
            tape.watch(flat)
            logits = model(tf.reshape(flat, shape), training=False)
            gap = (tf.gather(logits, y, axis=1, batch_dims=1) - tf.gather(logits, targets, axis=1, batch_dims=1))
        return gap, tape.gradient(gap, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO), logits

    def body(i, point, best, best_norm):
        gap, w, _ = gap_and_gradient(point)
        # the linearised boundary through `point`: w . z = w . point - gap
        step = project_on_hyperplane(point, w, -gap, norm, clip_min, clip_max)
        step_from_clean = project_on_hyperplane(flat_x, w, tf.reduce_sum(w * (point - flat_x), -1) - gap, norm,
                                                clip_min, clip_max)
        size, size_from_clean = _norm(step, norm), _norm(step_from_clean, norm)
        alpha = tf.minimum(size / (size + size_from_clean + _TINY), alpha_max)[:, None]
        point = tf.clip_by_value((1 - alpha) * (point + eta * step) + alpha * (flat_x + eta * step_from_clean),
                                 clip_min, clip_max)
        fooled = tf.not_equal(tf.argmax(model(tf.reshape(point, shape), training=False), -1, output_type=tf.int32),
                              y)
        distance = _norm(point - flat_x, norm)
        better = tf.logical_and(fooled, distance < best_norm)
        best = tf.where(better[:, None], point, best)
        best_norm = tf.where(better, distance, best_norm)
        point = tf.where(fooled[:, None], flat_x + beta * (point - flat_x), point)
        return i + 1, point, best, best_norm

    _, _, best, best_norm = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), flat_x, best, best_norm))
    return best, best_norm
