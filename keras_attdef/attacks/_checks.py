"""Input checks shared by attacks, defences and evaluation.

Eagerly a bad input raises `ValueError` at once; inside a graph the range check becomes a
`tf.debugging` assertion (a no-op under XLA, where the eager path or the step's own check runs first).
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf


def check_eps(eps, name: str = "eps"):
    """Raises `ValueError` for a negative (or non-finite) budget that can be read now."""
    value = None
    if isinstance(eps, numbers.Number):
        value = float(eps)
    elif tf.is_tensor(eps) and tf.executing_eagerly():
        value = float(tf.reduce_min(eps))
    if value is not None and (value < 0 or not np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return eps


def check_range(x, clip_min: float, clip_max: float):
    """Checks that `x` lies in [clip_min, clip_max] and has no NaN; returns `x` as a float tensor."""
    if clip_min >= clip_max:
        raise ValueError(f"clip_min ({clip_min}) must be below clip_max ({clip_max}).")
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"Inputs must be floating point in [{clip_min}, {clip_max}], got dtype {x.dtype.name}. "
            "Scale uint8 images with x / 255 (datasets.load does this)."
        )
    message = (
        f"Inputs must lie in [{clip_min}, {clip_max}] with no NaN. Rescale them (e.g. x / 255) or "
        "pass clip_min/clip_max matching your preprocessing."
    )
    if tf.executing_eagerly():
        low, high = float(tf.reduce_min(x)), float(tf.reduce_max(x))
        if not (clip_min <= low and high <= clip_max):  # NaN fails both comparisons
            raise ValueError(f"{message} Got values in [{low:.4g}, {high:.4g}].")
        return x
    ok = tf.logical_and(tf.reduce_all(x >= clip_min), tf.reduce_all(x <= clip_max))
    with tf.control_dependencies([tf.debugging.Assert(ok, [message, tf.reduce_min(x), tf.reduce_max(x)])]):
        return tf.identity(x)


def check_labels(y, x, num_classes: int | None = None):
    """Returns integer labels of shape (batch,) from (batch,), (batch, 1) or one-hot (batch, k).

    Raises:
        ValueError: the labels' batch size or shape does not fit `x`, or (eagerly, with `num_classes`) a label
            is outside [0, num_classes).
    """
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] not in (1, None) and (num_classes is None or y.shape[-1] == num_classes):
        y = tf.argmax(y, axis=-1)  # one-hot or probabilities
    elif y.shape.rank == 2 and y.shape[-1] == 1:
        y = tf.squeeze(y, -1)
    if y.shape.rank != 1:
        raise ValueError(
            f"Labels must have shape (batch,), (batch, 1) or one-hot (batch, {num_classes or 'classes'}); "
            f"got {y.shape} for inputs of shape {x.shape}."
        )
    if x.shape[0] is not None and y.shape[0] is not None and x.shape[0] != y.shape[0]:
        raise ValueError(f"Got {x.shape[0]} inputs but {y.shape[0]} labels; they must match one to one.")
    if y.dtype.is_floating:
        y = tf.cast(tf.round(y), tf.int32)
    y = tf.cast(y, tf.int32)
    # values can only be read eagerly; inside a traced step the labels come from the user's data pipeline
    if num_classes and tf.executing_eagerly() and y.shape[0]:
        low, high = int(tf.reduce_min(y)), int(tf.reduce_max(y))
        if low < 0 or high >= num_classes:
            raise ValueError(f"Labels must lie in [0, {num_classes - 1}] for a {num_classes}-class model; got "
                             f"values in [{low}, {high}].")
    return y
