"""Flow fields (spatial transformations): the differentiable bilinear warp and the flow budget.

Shared by the stAdv attack (`attacks.spatial`) and the certificate (`certify`): both must see the same
warp. Output pixel i takes the bilinear interpolation of the input at its own displaced position
(row_i + du_i, col_i + dv_i); the image is zero outside its borders (stAdv eq. 4).

Example:

>>> import numpy as np
>>> x = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
>>> flow = np.zeros((1, 3, 3, 2), "float32"); flow[..., 1] = 1.0   # every pixel reads its right neighbour
>>> warp(x, flow)[0, :, :, 0].numpy().tolist()
[[1.0, 2.0, 0.0], [4.0, 5.0, 0.0], [7.0, 8.0, 0.0]]
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf


def warp(x, flow):
    """Bilinear warp of `x` (batch, h, w, c) by `flow` (batch, h, w, 2) = (d_row, d_col) per pixel."""
    x = tf.convert_to_tensor(x)
    flow = tf.cast(flow, x.dtype)
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    rows = tf.cast(tf.range(height), x.dtype)[None, :, None] + flow[..., 0]
    cols = tf.cast(tf.range(width), x.dtype)[None, None, :] + flow[..., 1]
    row0, col0 = tf.floor(rows), tf.floor(cols)
    w_row, w_col = rows - row0, cols - col0
    flat = tf.reshape(x, [batch, height * width, channels])

    def read(r, c):
        inside = (r >= 0) & (r <= tf.cast(height - 1, x.dtype)) & (c >= 0) & (c <= tf.cast(width - 1, x.dtype))
        index = tf.cast(tf.clip_by_value(r, 0.0, tf.cast(height - 1, x.dtype)), tf.int32) * width + tf.cast(
            tf.clip_by_value(c, 0.0, tf.cast(width - 1, x.dtype)), tf.int32)
        values = tf.gather(flat, tf.reshape(index, [batch, -1]), batch_dims=1)
        values = tf.reshape(values, [batch, height, width, channels])
        return values * tf.cast(inside, x.dtype)[..., None]

    w_row, w_col = w_row[..., None], w_col[..., None]
    return (read(row0, col0) * (1 - w_row) * (1 - w_col) + read(row0 + 1, col0) * w_row * (1 - w_col)
            + read(row0, col0 + 1) * (1 - w_row) * w_col + read(row0 + 1, col0 + 1) * w_row * w_col)


def flow_loss(flow, epsilon: float = 1e-8):
    """stAdv's total-variation flow loss (eq. 6) per sample, with the flow zero outside the image.

    Sum over pixels i and their 4 neighbours j of sqrt(|du_i - du_j|^2 + |dv_i - dv_j|^2 + epsilon).
    With zero padding every term is a row of the neighbour-difference operator N, so the loss is at
    least ||N vec(r)||_2: a flow with loss <= eps lies in the ellipsoid the certificate covers.
    """
    flow = tf.convert_to_tensor(flow)
    padded = tf.pad(flow, [[0, 0], [1, 1], [1, 1], [0, 0]])
    centre = padded[:, 1:-1, 1:-1]
    total = 0.0
    for neighbour in (padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]):
        total += tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(centre - neighbour), -1) + epsilon), axis=[1, 2])
    return total


def difference_operator(height: int, width: int) -> np.ndarray:
    """N for one flow channel: one row per (pixel, neighbour) pair of `flow_loss`, zero-padded borders."""
    rows = []
    n = height * width
    for i in range(height):
        for j in range(width):
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                row = np.zeros(n)
                row[i * width + j] = 1.0
                a, b = i + di, j + dj
                if 0 <= a < height and 0 <= b < width:
                    row[a * width + b] = -1.0
                rows.append(row)
    return np.asarray(rows)


MAX_PIXELS = 64 * 64  # N^T N is (pixels x pixels): inverting it is the cost that limits the image size


@functools.lru_cache(maxsize=8)
def _unit_box(height: int, width: int) -> np.ndarray:
    n = difference_operator(height, width)
    return np.sqrt(np.diag(np.linalg.inv(n.T @ n))).reshape(height, width)


def ellipsoid_box(height: int, width: int, budget: float) -> np.ndarray:
    """Per-pixel flow box of the ellipsoid ||N vec(r)||_2 <= budget: rho_i = budget * sqrt(((N^T N)^-1)_ii).

    The same box holds for both flow channels (N acts on each alike). Returns `(height, width)`.

    Raises:
        ValueError: a negative or non-finite budget, or an image above 64x64 pixels.
    """
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"The flow budget must be finite and >= 0, got {budget}.")
    if height * width > MAX_PIXELS:
        raise ValueError(f"The flow ellipsoid's box is computed for images up to {MAX_PIXELS} pixels (64x64); "
                         f"got {height}x{width}. Give a per-pixel box with rho= instead.")
    return budget * _unit_box(int(height), int(width))
