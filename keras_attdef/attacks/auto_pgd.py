"""APGD: Auto-PGD with its step-size schedule, momentum and checkpoints (Croce and Hein, 2020, arXiv:2003.01690).

APGD needs no step size: it starts at 2 eps and halves the step of a sample at a checkpoint when, since
the previous checkpoint, the loss rose on fewer than `rho` of the steps, or the step was not halved at the
previous checkpoint and the best loss has not improved since (it then restarts from the best point).
Checkpoints fall after 22% of the iterations, then after intervals shrinking by 3% to at least 6%. Each
step is a projected gradient step followed by a momentum step (`alpha` 0.75).

`apgd_ce` raises the cross-entropy, `apgd_dlr` the difference-of-logits-ratio loss, and `apgd_t` runs the
targeted DLR loss towards each of the `num_targets` classes the model ranks next after the label (the
APGD-T of the standard AutoAttack). Every function returns, per sample, the last point that fooled the
model if the attack found one (as AutoAttack keeps it), else the highest-loss point it reached.

Example:

>>> import numpy as np
>>> from keras_attdef import attacks, models
>>> net = models.lenet()
>>> x = np.random.rand(4, 28, 28, 1).astype("float32"); y = np.array([0, 1, 2, 3])
>>> x_adv = attacks.apgd_ce(net, x, y, eps=0.3, steps=10)
>>> bool(np.abs(x_adv - x).max() <= 0.3 + 1e-6)
True
"""
from __future__ import annotations

import functools

import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.inputs import check_eps, check_labels, check_range
from keras_attdef.attacks.objectives import cross_entropy
from keras_attdef.attacks.registry import register

_TINY = 1e-12


def dlr_loss(logits, labels):
    """Difference of logits ratio: -(z_y - max_{j != y} z_j) / (z_(1) - z_(3)), z sorted descending."""
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    labelled = tf.reduce_sum(onehot * logits, -1)
    other = tf.reduce_max(logits - onehot * 1e9, -1)
    return -(labelled - other) / (ordered[:, 0] - ordered[:, 2] + _TINY)


def targeted_dlr_loss(logits, labels, targets):
    """Targeted DLR: -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2); raising it moves towards class t."""
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    labelled = tf.gather(logits, labels, axis=1, batch_dims=1)
    target = tf.gather(logits, targets, axis=1, batch_dims=1)
    return -(labelled - target) / (ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + _TINY)


def checkpoint_intervals(steps: int) -> list[int]:
    """Iterations between APGD's checkpoints: 22% of `steps`, then 3% less each time, at least 6%."""
    first, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    intervals, length, total = [], first, 0
    while total + length <= steps:
        intervals.append(length)
        total += length
        length = max(length - shrink, least)
    return intervals


def _random_start(x, eps, norm, clip_min, clip_max):
    # APGD's own start: a random direction scaled to the ball's boundary.
    if norm == "linf":
        t = tf.random.uniform(tf.shape(x), -1.0, 1.0, dtype=x.dtype)
        t = t / tf.reduce_max(tf.abs(t), axis=tf.range(1, tf.rank(x)), keepdims=True)
    else:
        t = tf.random.normal(tf.shape(x), dtype=x.dtype)
        t = t / engine.per_sample_norm(t)
    return tf.clip_by_value(x + eps * t, clip_min, clip_max)


def apgd(model, x, y, eps: float, steps: int = 100, norm: str = "linf", loss: str = "ce", targets=None,
         restarts: int = 1, rho: float = 0.75, momentum: float = 0.75, clip_min: float = 0.0,
         clip_max: float = 1.0):
    """APGD with a given loss; `apgd_ce`, `apgd_dlr` and `apgd_t` are the named forms.

    Args:
        model: a Keras model returning logits.
        x: clean batch in [clip_min, clip_max].
        y: true labels.
        eps: budget in `norm`.
        steps: iterations per restart (100 in AutoAttack).
        norm: `"linf"` or `"l2"`.
        loss: `"ce"`, `"dlr"` or `"dlr_targeted"` (needs `targets`).
        targets: target class per sample for `"dlr_targeted"`.
        restarts: independent random starts; a sample keeps the first that fools the model, else the
            highest-loss point.
        rho: a checkpoint halves the step when the loss rose on fewer than `rho` of the steps since the last.
        momentum: weight of the new projected step against the previous one (alpha in the paper).
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The adversarial batch.
    """
    check_eps(eps)
    if norm not in engine.NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {engine.NORMS}.")
    if int(steps) < 1 or int(restarts) < 1:
        raise ValueError(f"steps and restarts must be >= 1, got {steps} and {restarts}.")
    x = check_range(x, clip_min, clip_max)
    y = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    if loss == "ce":
        loss_fn = cross_entropy
    elif loss == "dlr":
        loss_fn = dlr_loss
    elif loss == "dlr_targeted":
        if targets is None:
            raise ValueError("loss='dlr_targeted' needs `targets`.")
        targets = tf.cast(tf.convert_to_tensor(targets), tf.int32)
        loss_fn = lambda logits, labels: targeted_dlr_loss(logits, labels, targets)  # noqa: E731
    else:
        raise ValueError(f"Unknown APGD loss {loss!r}; choose 'ce', 'dlr' or 'dlr_targeted'.")
    best, found = None, None
    for _ in range(int(restarts)):
        candidate, fooled = _apgd_run(model, x, y, tf.cast(eps, x.dtype), int(steps), norm, loss_fn, rho, momentum,
                                      clip_min, clip_max)
        if best is None:
            best, found = candidate, fooled
        else:  # keep the earlier restart's point where it already fooled the model
            keep = engine.expand_to(found, x)
            best = tf.where(keep, best, candidate)
            found = tf.logical_or(found, fooled)
    return tf.stop_gradient(best)


def _apgd_run(model, x, y, eps, steps, norm, loss_fn, rho, momentum, clip_min, clip_max):
    def project(point):
        return engine.project(point, x, eps, norm, clip_min, clip_max)

    def evaluate(point):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(point)
            logits = model(point, training=False)
            values = loss_fn(logits, y)
            total = tf.reduce_sum(values)
        grad = tape.gradient(total, point, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        fooled = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), y)
        return values, grad, fooled

    expand = lambda mask: engine.expand_to(mask, x)  # noqa: E731
    intervals = checkpoint_intervals(steps)
    checkpoints = [sum(intervals[:i + 1]) for i in range(len(intervals))]
    lengths = tf.constant([0] * (steps + 1), tf.float32)
    lengths = tf.tensor_scatter_nd_update(lengths, [[c] for c in checkpoints], [float(n) for n in intervals])

    start = _random_start(x, eps, norm, clip_min, clip_max)
    values, grad, fooled = evaluate(start)
    batch = tf.shape(x)[0]
    eta = tf.fill([batch], 2.0) * eps
    state = dict(
        i=tf.constant(1), point=start, previous=start, grad=grad, values=values,
        best=start, best_values=values, best_grad=grad, adversarial=start, found=fooled,
        eta=eta, rises=tf.zeros([batch]), halved_last=tf.zeros([batch], tf.bool), best_at_last=values,
    )

    def body(s):
        weight = tf.where(s["i"] > 1, momentum, 1.0)
        point, previous = s["point"], s["previous"]
        eta_x = tf.reshape(s["eta"], tf.concat([[batch], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
        z = project(point + eta_x * engine.ascent_direction(s["grad"], norm))
        moved = project(point + weight * (z - point) + (1.0 - weight) * (point - previous))
        values, grad, fooled = evaluate(moved)
        rises = s["rises"] + tf.cast(values > s["values"], tf.float32)
        improved = values > s["best_values"]
        best = tf.where(expand(improved), moved, s["best"])
        best_grad = tf.where(expand(improved), grad, s["best_grad"])
        best_values = tf.where(improved, values, s["best_values"])
        # The latest point that fools, as AutoAttack keeps it: deeper across the boundary than the first.
        adversarial = tf.where(expand(fooled), moved, s["adversarial"])
        found = tf.logical_or(s["found"], fooled)
        # Checkpoint: halve the step where progress stalled and restart from the best point.
        length = lengths[s["i"]]
        at_checkpoint = length > 0
        stalled = tf.logical_or(rises <= rho * length,
                                tf.logical_and(tf.logical_not(s["halved_last"]), s["best_at_last"] >= best_values))
        halve = tf.logical_and(at_checkpoint, stalled)
        eta = tf.where(halve, s["eta"] / 2.0, s["eta"])
        new_point = tf.where(expand(halve), best, moved)
        new_grad = tf.where(expand(halve), best_grad, grad)
        return dict(
            i=s["i"] + 1, point=tf.stop_gradient(new_point), previous=tf.stop_gradient(point),
            grad=new_grad, values=values, best=best, best_values=best_values, best_grad=best_grad,
            adversarial=adversarial, found=found, eta=eta,
            rises=tf.where(at_checkpoint, tf.zeros_like(rises), rises),
            halved_last=tf.where(at_checkpoint, halve, s["halved_last"]),
            best_at_last=tf.where(at_checkpoint, best_values, s["best_at_last"]),
        )

    state = tf.while_loop(lambda s: s["i"] <= steps, lambda s: (body(s),), (state,),
                          maximum_iterations=steps)[0]
    result = tf.where(expand(state["found"]), state["adversarial"], state["best"])
    return result, state["found"]


@register("apgd_ce")
def apgd_ce(model, x, y, eps: float, steps: int = 100, norm: str = "linf", restarts: int = 1,
            clip_min: float = 0.0, clip_max: float = 1.0):
    """APGD on the cross-entropy (AutoAttack's first attack). Arguments as `apgd`."""
    return apgd(model, x, y, eps, steps, norm, "ce", restarts=restarts, clip_min=clip_min, clip_max=clip_max)


@register("apgd_dlr")
def apgd_dlr(model, x, y, eps: float, steps: int = 100, norm: str = "linf", restarts: int = 1,
             clip_min: float = 0.0, clip_max: float = 1.0):
    """APGD on the (untargeted) DLR loss, which does not saturate like the cross-entropy. Arguments as `apgd`."""
    return apgd(model, x, y, eps, steps, norm, "dlr", restarts=restarts, clip_min=clip_min, clip_max=clip_max)


def _attack_unfooled(model, x, y, targets, todo, best, found, eps, steps, norm, clip_min, clip_max):
    """One APGD-T target on the rows `todo`; returns `best` and `found` with those rows updated."""
    rows = todo[:, None]
    labels = tf.gather(y, todo)
    candidate = apgd(model, tf.gather(x, todo), labels, eps, steps, norm, "dlr_targeted",
                     targets=tf.gather(targets, todo), clip_min=clip_min, clip_max=clip_max)
    fooled = tf.not_equal(tf.argmax(model(candidate, training=False), -1, output_type=tf.int32), labels)
    return tf.tensor_scatter_nd_update(best, rows, candidate), tf.tensor_scatter_nd_update(found, rows, fooled)


@register("apgd_t")
def apgd_t(model, x, y, eps: float, steps: int = 100, norm: str = "linf", num_targets: int = 9,
           clip_min: float = 0.0, clip_max: float = 1.0):
    """APGD-T: the targeted DLR loss towards each of the `num_targets` classes ranked next after the top one.

    Runs one APGD per target class (on the clean input's logits: the 2nd, 3rd, ... highest); a sample keeps
    the first run that fools the model, else the last run's highest-loss point.
    """
    x = check_range(x, clip_min, clip_max)
    y = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    num_classes = int(model.output_shape[-1]) if hasattr(model, "output_shape") else None
    num_targets = min(int(num_targets), (num_classes or num_targets + 1) - 1)
    if num_targets < 1:
        raise ValueError("APGD-T needs at least two classes.")
    ranked = tf.argsort(model(x, training=False), axis=-1, direction="DESCENDING")
    best, found = x, tf.zeros([tf.shape(x)[0]], tf.bool)
    for k in range(1, num_targets + 1):
        # As in AutoAttack, each target runs only on the points no earlier target fooled.
        todo = tf.where(tf.logical_not(found))[:, 0]
        run = functools.partial(_attack_unfooled, model, x, y, ranked[:, k], todo, best, found, eps, steps, norm,
                                clip_min, clip_max)
        if tf.executing_eagerly():
            if int(tf.size(todo)) == 0:
                break
            best, found = run()
        else:  # in a graph, skip the empty batch with a cond (a conv on zero samples fails with oneDNN)
            best, found = tf.cond(tf.size(todo) > 0, run, lambda: (best, found))
    return tf.stop_gradient(best)
