"""Square: a score-based attack that needs no gradient (Andriushchenko et al., 2020, arXiv:1912.00049).

Random search over square-shaped updates: each query changes one square window of the perturbation and
keeps the change where it lowers the margin `z_y - max_{j != y} z_j`. The window's side shrinks on a fixed
schedule of the query count (`p_init` is the starting fraction of pixels). Linf: the window gets a random
+-eps per channel (from vertical stripes at the start). L2: the window gets a "pseudo-Gaussian" bump
with the mass of a second window moved into it, rescaled to keep the norm at eps.

Only the model's outputs are used, so it runs on models whose gradients are missing, zero or masked;
samples stop querying once fooled (the count of queries is per sample), and the batch sent to the model
shrinks as they do, so a weak model costs few queries.

Example:

>>> import numpy as np
>>> from keras_attdef import attacks, models
>>> net = models.lenet()
>>> x = np.random.rand(4, 28, 28, 1).astype("float32"); y = np.array([0, 1, 2, 3])
>>> result = attacks.square(net, x, y, eps=0.3, queries=20, return_result=True)
>>> bool(np.abs(result.x_adv - x).max() <= 0.3 + 1e-6), result.queries.shape
(True, (4,))
"""
from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.inputs import check_eps, check_labels, check_range
from keras_attdef.attacks.objectives import margin as margin_of
from keras_attdef.attacks.registry import register
from keras_attdef.attacks.result import AttackResult


def window_fraction(p_init: float, query: int, queries: int) -> float:
    """The schedule of the window's share of pixels: p_init halved at fixed points of the query budget."""
    progress = int(query / queries * 10000)
    for limit, divisor in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
                           (6000, 128), (8000, 256)):
        if progress <= limit:
            return p_init / divisor
    return p_init / 512


def _pseudo_gaussian(rows: int, cols: int) -> np.ndarray:
    # Concentric rectangles around the centre, ring k weighted 1 / (k + 1)^2, unit L2 norm.
    bump = np.zeros((rows, cols))
    centre_r, centre_c = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        bump[max(centre_r - k, 0):min(centre_r + k + 1, rows), max(centre_c - k, 0):min(centre_c + k + 1, cols)] += \
            1.0 / (k + 1) ** 2
    return bump / np.sqrt(np.sum(bump ** 2))


def l2_window(side: int, rng: np.random.Generator) -> np.ndarray:
    """Square L2's window pattern: a positive and a negative pseudo-Gaussian half, unit norm, random orientation."""
    half = side // 2
    pattern = np.concatenate([_pseudo_gaussian(half, side), -_pseudo_gaussian(side - half, side)], 0)
    pattern /= np.sqrt(np.sum(pattern ** 2))
    return pattern.T if rng.random() > 0.5 else pattern


def _window_masks(batch, height, width, side):
    """Random top-left corners per sample and the `(batch, h, w, 1)` mask of each window."""
    top = tf.random.uniform([batch], 0, height - side + 1, tf.int32)
    left = tf.random.uniform([batch], 0, width - side + 1, tf.int32)
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = tf.logical_and(rows >= top[:, None], rows < top[:, None] + side)
    in_cols = tf.logical_and(cols >= left[:, None], cols < left[:, None] + side)
    mask = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])[..., None]
    return top, left, tf.cast(mask, tf.float32)


def _place(pattern, top, left, height, width):
    """Puts an `(s, s)` pattern at each sample's corner of a zero `(batch, h, w, 1)` image."""
    side = tf.shape(pattern)[0]
    r = tf.range(height)[None, :] - top[:, None]
    c = tf.range(width)[None, :] - left[:, None]
    valid = tf.logical_and(tf.logical_and(r[:, :, None] >= 0, r[:, :, None] < side),
                           tf.logical_and(c[:, None, :] >= 0, c[:, None, :] < side))
    rr = tf.clip_by_value(r, 0, side - 1)[:, :, None] * tf.ones_like(c)[:, None, :]
    cc = tf.clip_by_value(c, 0, side - 1)[:, None, :] * tf.ones_like(r)[:, :, None]
    values = tf.gather_nd(tf.convert_to_tensor(pattern, tf.float32), tf.stack([rr, cc], -1))
    return tf.where(valid, values, 0.0)[..., None]


def _channel_norm(t):
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True) + 1e-12)


def _true_class_margin(model, y, points):
    """z_y - max other logit per point: < 0 means fooled."""
    return margin_of(model(points, training=False), y) * -1.0


def _initial_point(x, norm: str, eps: float, rng, clip_min: float, clip_max: float):
    """Square's start: vertical stripes of +-eps (Linf), or a grid of pseudo-Gaussian bumps scaled to eps (L2)."""
    batch, height, width, channels = (int(d) for d in x.shape)
    if norm == "linf":
        stripes = rng.choice([-eps, eps], size=(batch, 1, width, channels)).astype(np.float32)
        return tf.clip_by_value(x + stripes, clip_min, clip_max)
    side = max(height // 5, 1)
    delta = np.zeros((batch, height, width, channels), np.float32)
    for r in range(0, height - side + 1, side):
        for c in range(0, width - side + 1, side):
            bump = _pseudo_gaussian(side, side)[None, :, :, None]
            delta[:, r:r + side, c:c + side, :] += bump * rng.choice([-1.0, 1.0], size=(batch, 1, 1, channels))
    delta = tf.constant(delta)
    return tf.clip_by_value(x + delta / engine.per_sample_norm(delta) * eps, clip_min, clip_max)


class _SquareSteps:
    """One query of Square, Linf or L2, on a working set `(x, y)` that shrinks to the unfooled samples.

    The steps are compiled once per `square` call (a partial of the margin, not a nested def: tf.function
    counts traces per code object, and nested defs would warn of "excessive retracing" after a few calls).
    """

    def __init__(self, model, shape, eps: float, clip_min: float, clip_max: float):
        _, self.height, self.width, self.channels = (int(d) for d in shape)
        self.eps, self.clip_min, self.clip_max = eps, clip_min, clip_max
        self.margins = tf.function(functools.partial(_true_class_margin, model), reduce_retracing=True)
        self.linf = tf.function(self._linf, reduce_retracing=True)
        self.l2 = tf.function(self._l2, reduce_retracing=True)

    def _accept(self, x, y, candidate, best, best_margin, used, active):
        candidate_margin = self.margins(y, candidate)
        better = tf.logical_and(active, candidate_margin < best_margin)
        best = tf.where(engine.expand_to(better, x), candidate, best)
        return best, tf.where(better, candidate_margin, best_margin), used + tf.cast(active, tf.int32)

    def _linf(self, x, y, best, best_margin, used, side):
        _, _, mask = _window_masks(tf.shape(x)[0], self.height, self.width, side)
        signs = tf.sign(tf.random.uniform(tf.stack([tf.shape(x)[0], 1, 1, self.channels]), -1.0, 1.0))
        candidate = tf.clip_by_value(best * (1 - mask) + (x + self.eps * signs) * mask, self.clip_min, self.clip_max)
        candidate = engine.project(candidate, x, self.eps, "linf", self.clip_min, self.clip_max)
        return self._accept(x, y, candidate, best, best_margin, used, best_margin > 0)

    def _l2(self, x, y, best, best_margin, used, pattern):
        side, size = tf.shape(pattern)[0], tf.shape(x)[0]
        delta = best - x
        top, left, window = _window_masks(size, self.height, self.width, side)
        _, _, second = _window_masks(size, self.height, self.width, side)
        union = tf.maximum(window, second)
        image_norm = engine.per_sample_norm(delta)
        union_norm = _channel_norm(delta * union)
        old = delta * window / _channel_norm(delta * window)
        signs = tf.sign(tf.random.uniform(tf.stack([size, 1, 1, self.channels]), -1, 1))
        new = _place(pattern, top, left, self.height, self.width) * signs + old
        scale = tf.sqrt(tf.maximum(self.eps ** 2 - image_norm ** 2, 0.0) / self.channels + union_norm ** 2)
        delta = delta * (1 - union) + (new / _channel_norm(new) * scale) * window
        candidate = tf.clip_by_value(x + delta / engine.per_sample_norm(delta) * self.eps, self.clip_min, self.clip_max)
        return self._accept(x, y, candidate, best, best_margin, used, best_margin > 0)

    def window_side(self, norm: str, p: float) -> int:
        """The window's side for a share `p` of the pixels (odd and at least 3 for L2)."""
        features = self.height * self.width * self.channels
        side = round(math.sqrt(p * features / self.channels))
        if norm == "linf":
            return int(min(max(side, 1), self.height - 1))
        side = max(side, 3)
        return min(side + (1 - side % 2), self.height - 1 if (self.height - 1) % 2 else self.height - 2)


def _search(steps: _SquareSteps, x, y, best, norm, p_init, queries, rng, progress):
    """Runs the queries; returns the full batch's `(best, best_margin, used)`.

    The working set holds rows `index` of the batch: when half of it is fooled it is cut to the rest, and
    the full batch is written back at each cut and at the end.
    """
    best_margin = steps.margins(y, best)
    used = tf.ones([int(x.shape[0])], tf.int32)
    queries_left = range(1, int(queries))
    if progress:
        from tqdm.auto import tqdm

        queries_left = tqdm(queries_left, desc="square", unit="query")
    index, work_x, work_y = tf.range(int(x.shape[0])), x, y
    full = [best, best_margin, used]
    for query in queries_left:
        active = int(tf.reduce_sum(tf.cast(best_margin > 0, tf.int32)))
        if active == 0:
            break
        if active <= int(tf.size(index)) // 2:
            full = [tf.tensor_scatter_nd_update(f, index[:, None], w) for f, w in zip(full, (best, best_margin, used))]
            keep = tf.where(best_margin > 0)[:, 0]
            index, work_x, work_y, best, best_margin, used = (
                tf.gather(t, keep) for t in (index, work_x, work_y, best, best_margin, used))
        side = steps.window_side(norm, window_fraction(p_init, query, int(queries)))
        if norm == "linf":
            best, best_margin, used = steps.linf(work_x, work_y, best, best_margin, used, tf.constant(side))
        else:
            best, best_margin, used = steps.l2(work_x, work_y, best, best_margin, used,
                                               tf.constant(l2_window(side, rng), tf.float32))
    return [tf.tensor_scatter_nd_update(f, index[:, None], w) for f, w in zip(full, (best, best_margin, used))]


@register("square", traceable=False)
def square(model, x, y, eps: float, queries: int = 5000, norm: str = "linf", p_init: float | None = None,
           seed: int | None = None, clip_min: float = 0.0, clip_max: float = 1.0, return_result: bool = False,
           progress: bool = False):
    """Square attack, Linf or L2, untargeted, on the margin loss.

    Args:
        model: a Keras model returning logits (or any callable `model(x, training=False)`).
        x: clean batch `(batch, h, w, c)` in [clip_min, clip_max].
        y: true labels.
        eps: budget in `norm`.
        queries: query budget per sample (5,000 in the standard AutoAttack).
        norm: `"linf"` or `"l2"`.
        p_init: starting share of pixels changed per query (default 0.8 for Linf, 0.1 for L2, as AutoAttack).
        seed: seeds window positions and signs.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        return_result: return an `AttackResult` (with success and queries per sample) instead of the batch.
        progress: show a progress bar over queries.

    Returns:
        The adversarial batch (a tensor), or an `AttackResult`.
    """
    check_eps(eps)
    if norm not in engine.NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {engine.NORMS}.")
    if int(queries) < 1:
        raise ValueError(f"queries must be >= 1, got {queries}.")
    x = check_range(tf.convert_to_tensor(x, tf.float32), clip_min, clip_max)
    if x.shape.rank != 4:
        raise ValueError(f"Square needs images (batch, h, w, c), got shape {x.shape}.")
    y = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    p_init = (0.8 if norm == "linf" else 0.1) if p_init is None else float(p_init)
    rng = np.random.default_rng(seed)
    if seed is not None:
        tf.random.set_seed(seed)
    eps = float(eps)
    steps = _SquareSteps(model, x.shape, eps, clip_min, clip_max)
    best = _initial_point(x, norm, eps, rng, clip_min, clip_max)
    best, best_margin, used = _search(steps, x, y, best, norm, p_init, queries, rng, progress)
    best = tf.stop_gradient(best)
    if return_result:
        return AttackResult(best.numpy(), (best_margin <= 0).numpy(), queries=used.numpy())
    return best
