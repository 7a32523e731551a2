"""The eigenvalue bound of `two_layer`, in TensorFlow, batched over class pairs and differentiable.

For every ordered class pair (label i, other j) the certificate bounds max z^T P_ij z over the box,
P_ij the `pair_matrix` of v = V_j - V_i. P is bipartite: P = [[0, B], [B^T, 0]] between the block
(constant, hidden) and the input block, with

    B = [a^T; diag(v) W'],    a = W'^T v,    W' = W diag(radius).

For a bipartite P the SDP dual min sum(c) s.t. diag(c) >= P reads, with c = (c1, c2) > 0 and
D = diag, sigma(c) = ||D1^-1/2 B D2^-1/2||_2,

    bound(c1, c2) = 2 * sigma(c) * sqrt(sum(c1) * sum(c2))

(scale c1 and c2 so that sigma = 1, then balance the two sums). sigma is a top singular value, found by
warm-started power iteration on products with B and B^T, never forming P: one product for all pairs costs
O(pairs * m * d). At the optimum c1 = x^2 and c2 = y^2 (x, y the top singular vectors, normalised),
which `optimise_pair_duals` iterates towards.

For training, x^T (D1^-1/2 B D2^-1/2) y with x, y held fixed is differentiable in the weights and c and
has the gradient of sigma: `pair_bound_surrogate`. It is a LOWER estimate of the bound whenever x, y are
not exactly the top singular vectors, so it is never reported as a certificate: `two_layer` re-checks
every c with a float64 eigen-decomposition.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

_FLOOR = 1e-6  # relative floor on dual entries (inputs with zero radius have zero columns in B)


def class_pairs(num_classes: int) -> np.ndarray:
    """`(num_classes * (num_classes - 1), 2)` ordered pairs (label, other), row-major."""
    return np.array([(i, j) for i in range(num_classes) for j in range(num_classes) if i != j], np.int32)


class PairOperator:
    """The off-diagonal blocks B_ij of every class pair's P_ij, as a batched linear operator.

    Args:
        kernel1: first dense kernel `(d, m)` (inputs x hidden), as Keras stores it.
        kernel2: second dense kernel `(m, k)`.
        radius: per-input radius `(d,)` or a scalar: the box is centre +- radius.
        pairs: `(p, 2)` class pairs; default all ordered pairs.
    """

    def __init__(self, kernel1, kernel2, radius, pairs=None):
        kernel1 = tf.convert_to_tensor(kernel1)
        kernel2 = tf.cast(kernel2, kernel1.dtype)
        radius = tf.cast(radius, kernel1.dtype)
        if pairs is None:
            pairs = class_pairs(int(kernel2.shape[-1]))
        pairs = np.asarray(pairs, np.int32)
        self.scaled = kernel1 * (tf.reshape(radius, [-1, 1]) if radius.shape.rank else radius)  # W'^T (d, m)
        columns = tf.transpose(kernel2)                                                        # (k, m)
        self.v = tf.gather(columns, pairs[:, 1]) - tf.gather(columns, pairs[:, 0])              # (p, m)
        self.a = tf.matmul(self.v, self.scaled, transpose_b=True)                              # (p, d)
        self.rows = 1 + int(kernel1.shape[1])   # constant + hidden
        self.cols = int(kernel1.shape[0])       # inputs
        self.size = self.rows + self.cols

    def apply(self, y):
        """B y: `(p, d)` -> `(p, 1 + m)`."""
        return tf.concat([tf.reduce_sum(self.a * y, -1, keepdims=True), self.v * tf.matmul(y, self.scaled)], -1)

    def apply_transpose(self, x):
        """B^T x: `(p, 1 + m)` -> `(p, d)`."""
        return self.a * x[:, :1] + tf.matmul(self.v * x[:, 1:], self.scaled, transpose_b=True)

    def abs_sums(self):
        """Row sums `(p, 1 + m)` and column sums `(p, d)` of |B| (a Gershgorin-like starting point)."""
        abs_scaled = tf.abs(self.scaled)
        rows = tf.concat([tf.reduce_sum(tf.abs(self.a), -1, keepdims=True),
                          tf.abs(self.v) * tf.reduce_sum(abs_scaled, 0)[None]], -1)
        cols = tf.abs(self.a) + tf.matmul(tf.abs(self.v), abs_scaled, transpose_b=True)
        return rows, cols


def _floored(c):
    return tf.maximum(c, _FLOOR * tf.reduce_mean(c, -1, keepdims=True) + 1e-30)


def top_singular_vectors(op: PairOperator, c1, c2, y, iterations: int):
    """Power iteration on D1^-1/2 B D2^-1/2 from `y` `(p, d)`; returns unit `(x, y)`, no gradient."""
    s1, s2 = tf.stop_gradient(tf.math.rsqrt(_floored(c1))), tf.stop_gradient(tf.math.rsqrt(_floored(c2)))
    y = tf.stop_gradient(y)
    x = None
    for _ in range(iterations):  # a Python loop: Keras traces train_step without AutoGraph
        x = tf.math.l2_normalize(s1 * tf.stop_gradient(op.apply(s2 * y)), -1)
        y = tf.math.l2_normalize(s2 * tf.stop_gradient(op.apply_transpose(s1 * x)), -1)
    return x, y


def pair_bound_surrogate(op: PairOperator, c1, c2, x, y):
    """`2 * x^T D1^-1/2 B D2^-1/2 y * sqrt(sum c1 * sum c2)` per pair; differentiable in B and c."""
    x, y = tf.stop_gradient(x), tf.stop_gradient(y)
    c1, c2 = _floored(c1), _floored(c2)
    sigma = tf.reduce_sum(x * tf.math.rsqrt(c1) * op.apply(y * tf.math.rsqrt(c2)), -1)
    return 2.0 * sigma * tf.sqrt(tf.reduce_sum(c1, -1) * tf.reduce_sum(c2, -1))


def full_duals(c1, c2, sigma):
    """The diagonal dual c of P (length 1 + m + d) from (c1, c2): scaled so that the bound is attained."""
    sum1, sum2 = np.sum(c1, -1, keepdims=True), np.sum(c2, -1, keepdims=True)
    sigma = np.reshape(sigma, (-1, 1))
    return np.concatenate([c1 * sigma * np.sqrt(sum2 / sum1), c2 * sigma * np.sqrt(sum1 / sum2)], -1)


def worst_case_logits(logits, labels, pair_bounds, num_classes: int):
    """Logits minus the label's logit plus 1/4 of the pair bound: `f_j - f_y + B[y, j] / 4`, 0 at y.

    Args:
        logits: `(batch, k)` logits at the box centre.
        labels: `(batch,)` integer labels.
        pair_bounds: `(k * (k - 1),)` bounds in `class_pairs` order.
        num_classes: k.

    Returns:
        `(batch, k)`; cross-entropy on these (label y) is the certified-training loss.
    """
    pairs = class_pairs(num_classes)
    table = tf.scatter_nd(pairs, pair_bounds, [num_classes, num_classes])     # B[i, j], 0 on the diagonal
    labels = tf.cast(labels, tf.int32)
    label_logit = tf.gather(logits, labels, batch_dims=1)[:, None]
    return logits - label_logit + 0.25 * tf.gather(table, labels)


def optimise_pair_duals(kernel1, kernel2, radius, pairs=None, steps: int = 100, power_iterations: int = 3,
                        damping: float = 0.5, dtype=tf.float32):
    """Dual vectors c for every pair at once, by the fixed-point iteration c1 <- x^2, c2 <- y^2.

    Each round runs a few warm-started power iterations for the top singular vectors (x, y) of
    D1^-1/2 B D2^-1/2 and moves log c towards log of their squares (damped); the best c seen (by
    the surrogate bound) is kept.

    Returns:
        `(p, 1 + m + d)` numpy float64 duals in `class_pairs` order (inputs with zero radius get ~0).
        Whatever comes out, `two_layer.eigen_value_bound` checks it in float64.
    """
    op = PairOperator(tf.cast(kernel1, dtype), tf.cast(kernel2, dtype), tf.cast(radius, dtype), pairs)
    rows, cols = op.abs_sums()

    @tf.function(autograph=False)
    def run(c1, c2):
        y = tf.random.stateless_normal(tf.shape(c2), [0, 1], dtype=dtype)
        x, y = top_singular_vectors(op, c1, c2, y, 20)

        def body(t, c1, c2, x, y, best1, best2, best):
            x, y = top_singular_vectors(op, c1, c2, y, power_iterations)
            bound = pair_bound_surrogate(op, c1, c2, x, y)[:, None]
            better = bound < best
            best1, best2 = tf.where(better, c1, best1), tf.where(better, c2, best2)
            best = tf.minimum(bound, best)
            # stationary point of log(bound): c1 proportional to x^2, c2 to y^2 (the sums' scale is free)
            c1 = tf.exp((1 - damping) * tf.math.log(_floored(c1)) + damping * tf.math.log(_floored(x * x)))
            c2 = tf.exp((1 - damping) * tf.math.log(_floored(c2)) + damping * tf.math.log(_floored(y * y)))
            return t + 1, c1, c2, x, y, best1, best2, best

        big = tf.fill([tf.shape(c1)[0], 1], tf.constant(np.inf, dtype))
        out = tf.while_loop(lambda t, *_: t < steps, body, (0, c1, c2, x, y, c1, c2, big))
        best1, best2 = _floored(out[5]), _floored(out[6])
        x, y = top_singular_vectors(op, best1, best2, out[4], 20)
        sigma = tf.reduce_sum(x * tf.math.rsqrt(best1) * op.apply(y * tf.math.rsqrt(best2)), -1)
        return best1, best2, sigma

    c1, c2, sigma = (t.numpy().astype(np.float64) for t in run(rows, cols))
    return full_duals(c1, c2, sigma)
