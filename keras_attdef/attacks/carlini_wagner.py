"""C&W-L2 (Carlini and Wagner, 2017, arXiv:1608.04644): the smallest L2 change that flips the class.

Adam on tanh-space variables w, x' = (tanh(w) + 1) / 2 scaled to [clip_min, clip_max], minimising
`||x' - x||_2^2 + c * max(z_y - max_{j != y} z_j, -kappa)` (targeted: `max(max_{j != t} z_j - z_t, -kappa)`),
with a binary search per sample on c: success lowers c (a smaller change), failure raises it (x10 until
an upper end is found, then bisection). Each sample keeps its smallest successful change.

Example:

>>> from keras_attdef import attacks, datasets, models
>>> x, y = datasets.load("mnist", "test", limit=4)
>>> result = attacks.carlini_wagner_l2(models.lenet(), x, y, steps=10, search_steps=2, return_result=True)
>>> result.distance.shape, bool(result.x_adv.min() >= 0.0)  # distance: L2, NaN where it failed
((4,), True)
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_labels, check_range
from keras_attdef.attacks.objectives import attack_margin
from keras_attdef.attacks.registry import register
from keras_attdef.attacks.result import AttackResult


@register("cw_l2", traceable=False)
def carlini_wagner_l2(model, x, y, targeted: bool = False, initial_const: float = 1e-2, search_steps: int = 5,
                      steps: int = 1000, learning_rate: float = 0.01, kappa: float = 0.0, clip_min: float = 0.0,
                      clip_max: float = 1.0, return_result: bool = False):
    """C&W-L2 on a batch.

    Args:
        model: a Keras model returning logits.
        x: clean batch in [clip_min, clip_max].
        y: true labels, or target labels when `targeted`.
        targeted: reach `y` instead of leaving it.
        initial_const: the starting c.
        search_steps: binary-search rounds on c.
        steps: Adam steps per round.
        learning_rate: Adam step size.
        kappa: confidence margin.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        return_result: return an `AttackResult` (success and the L2 distance per sample) instead of the batch.

    Returns:
        The adversarial batch (a tensor), or an `AttackResult`.
    """
    if int(steps) < 1 or int(search_steps) < 1:
        raise ValueError(f"steps and search_steps must be >= 1, got {steps} and {search_steps}.")
    x = check_range(tf.convert_to_tensor(x, tf.float32), clip_min, clip_max)
    labels = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    batch = int(x.shape[0])
    span = clip_max - clip_min
    axes = list(range(1, len(x.shape)))
    w0 = tf.atanh(tf.clip_by_value((x - clip_min) / span * 2 - 1, -1 + 1e-6, 1 - 1e-6))

    def image(w):
        return (tf.tanh(w) + 1) / 2 * span + clip_min

    @tf.function(reduce_retracing=True, autograph=False)  # explicit tf.while_loop: nothing to convert
    def optimise(const):
        def body(t, w, m, v):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(w)
                x_new = image(w)
                distance = tf.reduce_sum(tf.square(x_new - x), axis=axes)
                margin = attack_margin(model(x_new, training=False), labels, targeted)
                total = tf.reduce_sum(distance + const * tf.maximum(margin, -kappa))
            grad = tape.gradient(total, w, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * tf.square(grad)
            step = tf.cast(t + 1, tf.float32)
            update = (m / (1 - 0.9 ** step)) / (tf.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
            return t + 1, w - learning_rate * update, m, v

        zeros = tf.zeros_like(w0)
        _, w, _, _ = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), w0, zeros, zeros))
        x_new = image(w)
        margin = attack_margin(model(x_new, training=False), labels, targeted)
        return x_new, margin, tf.sqrt(tf.reduce_sum(tf.square(x_new - x), axis=axes))

    const = np.full(batch, float(initial_const))
    low, high = np.zeros(batch), np.full(batch, np.inf)
    best = x.numpy().copy()
    best_l2 = np.full(batch, np.inf)
    for _ in range(int(search_steps)):
        x_new, margin, l2 = (t.numpy() for t in optimise(tf.constant(const, tf.float32)))
        success = margin < -kappa if kappa > 0 else margin < 0
        better = success & (l2 < best_l2)
        best[better], best_l2[better] = x_new[better], l2[better]
        high = np.where(success, np.minimum(high, const), high)
        low = np.where(success, low, np.maximum(low, const))
        const = np.where(np.isfinite(high), (low + high) / 2, const * 10)
    found = np.isfinite(best_l2)
    if return_result:
        return AttackResult(best, found, distance=np.where(found, best_l2, np.nan))
    return tf.constant(best)
