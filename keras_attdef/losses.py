"""Distances and loss helpers shared by the defences.

Every distance maps two batches to one value per sample; defences average over the batch and the
training step scales the average like a Keras loss under a distribution strategy.

Example:

>>> import tensorflow as tf
>>> a, b = tf.constant([[0.0, 3.0]]), tf.constant([[4.0, 0.0]])
>>> [float(distance(a, b, kind)[0]) for kind in ("l1", "l2", "sq_l2", "mse")]
[7.0, 5.0, 25.0, 12.5]
"""
from __future__ import annotations

import tensorflow as tf

DISTANCES = ("l1", "l2", "sq_l2", "mse")
# Scale-free distances between attention maps, which a vanishing map cannot satisfy (see `map_distance`).
MAP_DISTANCES = ("cosine", "softmax_kl", "softmax_js")
# A map whose norm is below this share of the batch's mean norm counts as having that norm: cosine stays
# bounded near zero maps and a vanishing map still sits at distance ~1 from any other.
COSINE_FLOOR = 0.1
_TINY = 1e-12


def _flat(t):
    return tf.reshape(t, [tf.shape(t)[0], -1])


def distance(a, b, kind: str = "l2"):
    """Per-sample distance between two batches of equal shape.

    Args:
        a: first batch.
        b: second batch.
        kind: `"l1"` (sum of absolute differences), `"l2"` (Euclidean norm), `"sq_l2"` (its square) or
            `"mse"` (mean squared difference).

    Returns:
        A `(batch,)` tensor.
    """
    diff = _flat(a) - _flat(b)
    if kind == "l1":
        return tf.reduce_sum(tf.abs(diff), axis=-1)
    if kind == "l2":
        # the small constant keeps the gradient finite where a == b (e.g. a masked-out sample)
        return tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + _TINY)
    if kind == "sq_l2":
        return tf.reduce_sum(tf.square(diff), axis=-1)
    if kind == "mse":
        return tf.reduce_mean(tf.square(diff), axis=-1)
    raise ValueError(f"Unknown distance {kind!r}; choose one of {DISTANCES}.")


def check_distance(kind: str, allowed=DISTANCES) -> str:
    """`kind` if it is one of `allowed`, else a ValueError naming them."""
    if kind not in allowed:
        raise ValueError(f"Unknown distance {kind!r}; choose one of {tuple(allowed)}.")
    return kind


def _spatial_log_softmax(maps, temperature):
    return tf.nn.log_softmax(_flat(maps) / temperature, axis=-1)


def map_distance(a, b, kind: str = "cosine"):
    """Per-sample distance between two batches of attention maps that no collapse of the maps satisfies.

    Args:
        a: reference maps `(batch, h, w)` (e.g. the clean image's, or a teacher's).
        b: maps to compare.
        kind: `"cosine"`: 1 - cosine similarity, each norm floored at `COSINE_FLOOR` times the batch's
            mean norm (a vanishing map is at distance ~1 from every map, not 0); `"softmax_kl"`:
            KL(softmax(a / t) || softmax(b / t)) over the cells, t the batch's mean absolute value of `a`
            (a zero map becomes a uniform one, which a peaked reference penalises); `"softmax_js"`: the
            symmetric Jensen-Shannon form. Any kind of `distance` is also accepted.

    Returns:
        A `(batch,)` tensor.

    Example:

    >>> import tensorflow as tf
    >>> peak = tf.constant([[[0.0, 1.0], [0.0, 0.0]]])
    >>> float(map_distance(peak, tf.zeros_like(peak), "cosine")[0])
    1.0
    """
    if kind in DISTANCES:
        return distance(a, b, kind)
    check_distance(kind, MAP_DISTANCES)
    fa, fb = _flat(a), _flat(b)
    if kind == "cosine":
        na, nb = tf.norm(fa, axis=-1), tf.norm(fb, axis=-1)
        floor = tf.stop_gradient(COSINE_FLOOR * 0.5 * (tf.reduce_mean(na) + tf.reduce_mean(nb))) + _TINY
        return 1.0 - tf.reduce_sum(fa * fb, axis=-1) / (tf.maximum(na, floor) * tf.maximum(nb, floor))
    temperature = tf.stop_gradient(tf.reduce_mean(tf.abs(fa))) + _TINY
    log_p, log_q = _spatial_log_softmax(a, temperature), _spatial_log_softmax(b, temperature)
    if kind == "softmax_kl":
        return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    log_m = tf.math.log(0.5 * (tf.exp(log_p) + tf.exp(log_q)) + _TINY)
    return 0.5 * (tf.reduce_sum(tf.exp(log_p) * (log_p - log_m), -1) + tf.reduce_sum(tf.exp(log_q) * (log_q - log_m), -1))


def replica_mean(per_sample):
    """Batch mean of a per-sample loss; `scale_for_distribution` turns it into this replica's share."""
    return tf.reduce_mean(per_sample)


def scale_for_distribution(value):
    """Divides by the replicas in sync, as Keras does with its own losses, so gradients sum right."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


def unscale_for_distribution(value):
    """Undoes `scale_for_distribution` for logging."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value * replicas if replicas > 1 else value
