"""Exact per-pixel ranges of the bilinear warp under a per-pixel flow box.

Each output pixel depends only on its own flow (du, dv) and, as a function of it, is bilinear on every
integer grid cell (continuous across cells, zero outside the image). A bilinear function on a rectangle
takes its extremes at the rectangle's corners, so over the box |du|, |dv| <= rho the exact minimum and
maximum sit on the grid {-rho, rho} plus every integer in [-rho, rho], per coordinate (for rho < 1:
{-rho, 0, rho}). `warp_intervals` evaluates the warp there: the bounds are exact, not relaxed, and so
sound; the flow box is widened and the bounds are loosened to cover the float32 rounding of
`flow.warp` (`domain.warp_slack`), so they hold for the warp a user runs, not only in exact arithmetic.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_attdef.certify.domain import warp_slack
from keras_attdef.flow import warp


def warp_intervals(x, rho, margin: float = 1e-6, clip_min: float = 0.0, clip_max: float = 1.0):
    """Lower and upper bounds of `warp(x, flow)` over all flows with |du_i|, |dv_i| <= rho_i, float32 or exact.

    Args:
        x: images `(batch, h, w, c)` (numpy or tensor) in [clip_min, clip_max].
        rho: a number or an `(h, w)` array of per-pixel flow bounds (>= 0).
        margin: widening for the float64 rounding of this computation.
        clip_min: smallest input value (sets the float32 interpolation slack).
        clip_max: largest input value.

    Returns:
        `(low, high)` numpy arrays shaped like `x`.
    """
    x = tf.convert_to_tensor(x, tf.float64)
    height, width = int(x.shape[1]), int(x.shape[2])
    rho = np.broadcast_to(np.asarray(rho, np.float64), (height, width))
    if np.any(rho < 0) or not np.all(np.isfinite(rho)):
        raise ValueError("Flow bounds rho must be finite and >= 0.")
    if np.any(rho > max(height, width)):
        raise ValueError(f"Flow bounds up to {rho.max():.3g} exceed the image ({height}x{width}); no useful bound.")
    coordinate_slack, value_slack = warp_slack(height, width, rho.max(), clip_min, clip_max)
    rho = rho + coordinate_slack  # float32 rounds the sample coordinate: the flows it reaches lie in this box
    # Candidate coordinates per pixel: +-rho_i (the box's edges) and the integers strictly inside it.
    candidates = [-rho, rho]
    for k in range(-int(np.floor(rho.max())), int(np.floor(rho.max())) + 1):
        candidates.append(np.where(abs(k) < rho, float(k), 0.0))  # 0 is always inside: a harmless repeat
    low = high = None
    batch = tf.shape(x)[0]
    for du in candidates:
        for dv in candidates:
            flow = tf.broadcast_to(tf.constant(np.stack([du, dv], -1)[None]), [batch, height, width, 2])
            value = warp(x, flow)
            low = value if low is None else tf.minimum(low, value)
            high = value if high is None else tf.maximum(high, value)
    return low.numpy() - (margin + value_slack), high.numpy() + (margin + value_slack)
