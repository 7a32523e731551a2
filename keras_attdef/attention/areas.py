"""Attention areas, masks and overlaps (AAD eq. 2, 5, 6; activation attention of Zagoruyko & Komodakis).

Example:

>>> import tensorflow as tf
>>> g = tf.constant([[[0.0, 1.0], [3.0, 4.0]]])
>>> attention_area(g).numpy().tolist()           # cells above the mean (2.0)
[[[0.0, 0.0], [1.0, 1.0]]]
>>> float(iou(attention_area(g), top_k_cells(g, 1))[0])
0.5
"""
from __future__ import annotations

import tensorflow as tf

_TINY = 1e-12


def attention_area(maps, kappa="mean"):
    """Att(x) = sign(ReLU(g(x) - kappa)): 1 where the map exceeds kappa, else 0 (no gradient).

    Args:
        maps: `(batch, h, w)` attention maps.
        kappa: `"mean"` (each map's own mean, AAD's choice) or a number.
    """
    if isinstance(kappa, str):
        if kappa != "mean":
            raise ValueError(f"kappa must be 'mean' or a number, got {kappa!r}.")
        kappa = tf.reduce_mean(maps, axis=[1, 2], keepdims=True)
    # sign() has zero gradient everywhere: stop it explicitly so nothing pretends otherwise.
    return tf.stop_gradient(tf.sign(tf.nn.relu(maps - kappa)))


def top_k_cells(maps, k: int):
    """Binary mask of each map's k highest cells (ties broken by position), as in AAD Tables 3-4."""
    flat = tf.reshape(maps, [tf.shape(maps)[0], -1])
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    _, index = tf.math.top_k(flat, k=k)
    mask = tf.reduce_sum(tf.one_hot(index, tf.shape(flat)[1], dtype=maps.dtype), axis=1)
    return tf.stop_gradient(tf.reshape(mask, tf.shape(maps)))


def iou(a, b):
    """Per-sample intersection over union of two binary masks (1 where both are empty)."""
    a = tf.reshape(tf.cast(a > 0.5, tf.float32), [tf.shape(a)[0], -1])
    b = tf.reshape(tf.cast(b > 0.5, tf.float32), [tf.shape(b)[0], -1])
    inter = tf.reduce_sum(a * b, axis=-1)
    union = tf.reduce_sum(tf.maximum(a, b), axis=-1)
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), tf.ones_like(union))


def hard_mask(x, area):
    """x_m = x * (1 - Att(x)) with the area resized (nearest) to the input; the mask has no gradient.

    The mask's gradient is stopped before resizing: the sign in Att(x) has none, and XLA on CPU has
    no gradient kernel for nearest-neighbour resizing.
    """
    area = tf.stop_gradient(area)
    mask = tf.image.resize(area[..., None], tf.shape(x)[1:3], method="nearest")
    return x * (1.0 - tf.cast(mask, x.dtype))


def activation_attention(features, p: float = 2.0):
    """Activation attention: mean over channels of |A|^p, flattened and L2-normalised per sample.

    Args:
        features: a `(batch, h, w, c)` tensor, or a list of them (one map per layer).
        p: the exponent (2 in the AT+ALP and Zagoruyko-Komodakis papers).

    Returns:
        `(batch, h * w)` (or a list of them).
    """
    if isinstance(features, (list, tuple)):
        return [activation_attention(f, p) for f in features]
    if features.shape.rank != 4:
        raise ValueError(f"Activation attention needs (batch, h, w, c) features, got shape {features.shape}.")
    maps = tf.reduce_mean(tf.pow(tf.abs(features), p), axis=-1)
    flat = tf.reshape(maps, [tf.shape(maps)[0], -1])
    return flat / tf.sqrt(tf.reduce_sum(tf.square(flat), axis=-1, keepdims=True) + _TINY)
