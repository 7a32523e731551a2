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


def check_distance(kind: str) -> str:
    if kind not in DISTANCES:
        raise ValueError(f"Unknown distance {kind!r}; choose one of {DISTANCES}.")
    return kind


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
