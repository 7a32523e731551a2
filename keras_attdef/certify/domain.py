"""What a certificate is a statement about: inputs in their valid range, and float32 execution.

A certificate says: for every input of the threat set, the network, evaluated in **IEEE float32** (as
Keras runs it on a CPU, or a GPU with TF32 off), keeps the class. Two things make that statement hold
for the computation a user runs and not only for exact arithmetic:

- `check_domain` refuses inputs outside the range the intervals clip to (0-255 or standardised images
  otherwise give a certificate about a box that does not contain them).
- The float32 slacks below, derived from the standard rounding model `fl(a op b) = (a op b)(1 + d)`,
  `|d| <= u = 2^-24`, and `gamma_n = n u / (1 - n u)` (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2nd ed., sections 2.2 and 3.1; the dot-product bound holds for any summation order):

  * `warp_slack`: `flow.warp` rounds the sample coordinate `row + d_row` to float32, an error of at most
    `u (max(h, w) + rho + 1)`; the weight `coord - floor(coord)` and `1 - weight` add one rounding each
    (for coordinates below 1 in magnitude, at most u). So the float32 warp interpolates the exact image
    at a point within `2 u (max(h, w) + rho + 2)` of the exact one: widening the flow box by that much
    covers it. The interpolation itself, four terms of three factors summed, is within `gamma_7 M` of
    its exact value (`M` the largest input magnitude, the weights summing to 1): a value margin.
  * `network_slack`: `relu(W x + b)` then `V h + c` in float32. Per hidden unit the pre-activation is
    within `gamma_{n+1} (|W| |x| + |b|)` of exact (relu adds no error); per logit, `|V| e_h +
    gamma_{m+1} (|V| (|h| + e_h) + |c|)`. Over a box, `|x|` and `|h|` are bounded by interval arithmetic.
    A margin certified below minus this slack holds for the float32 logits.
"""
from __future__ import annotations

import numpy as np

from keras_attdef.inputs import check_images

UNIT_ROUNDOFF = 2.0 ** -24  # float32, round to nearest


def gamma(n: int) -> float:
    """`n u / (1 - n u)`: the relative error bound of n float32 roundings in sequence."""
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def range_tolerance(clip_min: float, clip_max: float) -> float:
    """A few float32 ulps of the range's largest magnitude: values this far outside are rounding."""
    return 4 * 2.0 ** -23 * max(1.0, abs(clip_min), abs(clip_max))


def check_domain(x, expected_shape, clip_min: float = 0.0, clip_max: float = 1.0, what: str = "images"):
    """`x` as float64 inside [clip_min, clip_max], after refusing what a certificate cannot cover.

    `inputs.check_images` with a tolerance of a few float32 ulps: values that far outside the range are
    rounding, and are clipped in.

    Raises:
        ValueError: another shape, a NaN or infinite value, or values outside the range by more than a few
            float32 ulps, with what to do about it.
    """
    return check_images(x, expected_shape, clip_min, clip_max, what=what, dtype=np.float64,
                        tolerance=range_tolerance(clip_min, clip_max))


def warp_slack(height: int, width: int, rho_max: float, clip_min: float = 0.0, clip_max: float = 1.0):
    """`(coordinate, value)`: the flow-box widening and the pixel margin covering float32 `flow.warp`."""
    coordinate = 2 * UNIT_ROUNDOFF * (max(height, width) + float(rho_max) + 2)
    value = gamma(7) * max(abs(clip_min), abs(clip_max)) * (1 + 4 * UNIT_ROUNDOFF)  # weights off by <= 2u each
    return coordinate, value


def network_slack(weights, low, high) -> np.ndarray:
    """Per class, the largest float32 error of its logit over the box [low, high] (flattened inputs)."""
    w, b, v_all, c_all = weights
    low, high = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
    magnitude = np.maximum(np.abs(low), np.abs(high))
    centre, radius = (low + high) / 2, (high - low) / 2
    n, m = w.shape[1], w.shape[0]
    hidden_error = gamma(n + 1) * (np.abs(w) @ magnitude + np.abs(b))
    hidden_high = np.maximum(w @ centre + b + np.abs(w) @ radius, 0.0)  # |h| <= this (h >= 0)
    return (np.abs(v_all) @ hidden_error
            + gamma(m + 1) * (np.abs(v_all) @ (hidden_high + hidden_error) + np.abs(c_all)))
