"""Certified training of two-layer ReLU networks (Raghunathan, Steinhardt and Liang, 2018, arXiv:1801.09344;
C. Nguyen, "Two approaches to defend against adversarial examples", Lehigh University thesis, 2018).

The loss adds, to the clean cross-entropy, cross-entropy on worst-case logits

    f_j(x) - f_y(x) + B_yj / 4,     B_yj = 2 sigma_yj * sqrt(sum c1_yj * sum c2_yj),

where B_yj is the differentiable surrogate of the eigenvalue (SDP-dual) bound on z^T P_yj z over the
input box centre +- radius (`certify.relaxation`): sigma_yj is the top singular value of
D1^-1/2 B_yj D2^-1/2, tracked by power iteration warm-started from the previous step, and the duals
c1, c2 of every class pair are trained with the network. The box radius is fixed per input (Linf:
eps everywhere; flow attacks: `flow_training_radius`, the largest warp-interval radius over training
images), so the 90 pair bounds do not depend on the batch and cost O(pairs * hidden * inputs) per step.

The surrogate is a training signal, not a certificate: `certify` re-computes every bound in float64.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_attdef.certify.relaxation import (
    PairOperator, class_pairs, pair_bound_surrogate, top_singular_vectors, worst_case_logits,
)
from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense

# Duals are exp(_LOG_SCALE * theta): the shared optimizer's small steps then move them by useful factors.
_LOG_SCALE = 10.0


class PairDuals(keras.layers.Layer):
    """Trainable duals (c1, c2) of every class pair and the power iteration's warm-start vectors."""

    def __init__(self, num_pairs: int, rows: int, cols: int, **kwargs):
        super().__init__(**kwargs)
        self.log_c1 = self.add_weight(shape=(num_pairs, rows), initializer="zeros", name="log_c1")
        self.log_c2 = self.add_weight(shape=(num_pairs, cols), initializer="zeros", name="log_c2")
        # Under a distribution strategy every replica computes the same vectors (they depend on the
        # weights only); the first replica's copy is kept.
        self.vectors = self.add_weight(shape=(num_pairs, cols), name="singular_vectors", trainable=False,
                                       initializer=keras.initializers.RandomNormal(seed=0),
                                       aggregation="only_first_replica")

    def duals(self):
        return tf.exp(_LOG_SCALE * self.log_c1), tf.exp(_LOG_SCALE * self.log_c2)

    def numpy_duals(self):
        """`(c1, c2)` as float64 arrays `(pairs, 1 + m)` and `(pairs, d)`: a warm start for `certify`."""
        return tuple(np.exp(_LOG_SCALE * np.asarray(t, np.float64)) for t in (self.log_c1, self.log_c2))


def dense_kernels(model: keras.Model):
    """`(hidden kernel, logits kernel)` of a dense-relu-dense model, as live variables."""
    from keras_attdef.certify.network import dense_layers

    first, second = dense_layers(model)  # raises NotTwoLayerError with a clear message otherwise
    return first.kernel, second.kernel


def flow_training_radius(x, budget: float, quantile: float = 0.5, batch_size: int = 500) -> np.ndarray:
    """Per-input training radius from the warp intervals of the images in `x` at a flow budget.

    Per pixel, the `quantile` over the images of (high - low) / 2 of `certify.warp_intervals` under the
    per-pixel flow box of the budget's ellipsoid. `quantile=1` gives a box containing every image's
    threat set (shifted to its centre): sound for training but so wide (the strokes of some digit cross
    every pixel) that accuracy suffers; the median trains the typical image's box. Only the
    certificate, computed per image afterwards, has to be sound.
    """
    from keras_attdef.certify.intervals import warp_intervals
    from keras_attdef.flow import ellipsoid_box

    x = np.asarray(x, np.float32)
    rho = ellipsoid_box(x.shape[1], x.shape[2], budget)
    radii = []
    for start in range(0, len(x), batch_size):
        low, high = warp_intervals(x[start:start + batch_size], rho)
        radii.append(((np.clip(high, 0, 1) - np.clip(low, 0, 1)) / 2).reshape(len(low), -1))
    return np.quantile(np.concatenate(radii), quantile, axis=0)


@register_defense
class CertifiedTraining(Defense):
    """Trains a dense-relu-dense network so that `certify` can certify it. Logs `certified_loss` and
    `bound_loss` (mean pair bound, logged only).

    Args:
        radius: the input box's radius: a number (Linf eps) or one value per input (flattened).
        weights: `{"certified": weight of the worst-case cross-entropy, "bound": 0.0}`.
        warmup_steps: optimizer steps over which the radius ramps up from 0.
        power_iterations: power-iteration steps per training step (warm-started).

    Example:

    >>> from keras_attdef import RobustModel, defenses, models
    >>> net = RobustModel(models.two_layer_dense(16, input_shape=(4, 4, 1)), defenses.certified(0.05),
    ...                   eval_attack=None)
    >>> net.compile(optimizer="adam")
    >>> sorted(net.defense.term_names)
    ['bound', 'certified']
    """

    name = "certified"
    term_names = ("certified", "bound")
    default_weights = {"certified": 1.0, "bound": 0.0}

    def __init__(self, radius=0.1, weights=None, warmup_steps: int = 0, power_iterations: int = 2,
                 attack=None):
        super().__init__(None, weights, warmup_steps)
        radius_array = np.asarray(radius, np.float64)
        if np.any(radius_array < 0) or not np.all(np.isfinite(radius_array)):
            raise ValueError("radius must be finite and >= 0.")
        self.radius = float(radius_array) if radius_array.ndim == 0 else radius_array.reshape(-1).tolist()
        self.power_iterations = int(power_iterations)
        self.duals = None

    def attach(self, model: keras.Model):
        kernel1, kernel2 = dense_kernels(model)
        inputs, hidden = kernel1.shape
        if np.ndim(self.radius) and len(self.radius) != inputs:
            raise ValueError(f"radius has {len(self.radius)} entries; the network has {inputs} inputs.")
        pairs = class_pairs(int(kernel2.shape[1]))
        self.duals = PairDuals(len(pairs), 1 + int(hidden), int(inputs), name="pair_duals")

    @property
    def auxiliary_models(self) -> list:
        return [] if self.duals is None else [self.duals]

    def perturb(self, model, x, y, scale=None):
        """The input box radius in force at this step (the warm-up ramp applied); no adversarial batch."""
        radius = tf.constant(self.radius, tf.float32)
        return radius if scale is None else radius * scale

    def pair_bounds(self, model, radius):
        """Surrogate bounds of every class pair, `(k * (k - 1),)`; advances the power iteration."""
        kernel1, kernel2 = dense_kernels(model)
        op = PairOperator(kernel1, kernel2, radius)
        c1, c2 = self.duals.duals()
        x, y = top_singular_vectors(op, c1, c2, self.duals.vectors, self.power_iterations)
        self.duals.vectors.assign(y)
        return pair_bound_surrogate(op, c1, c2, x, y)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        if self.duals is None:
            raise RuntimeError("CertifiedTraining is used through RobustModel, which attaches it to the model.")
        logits = model(x, training=True)
        bounds = self.pair_bounds(model, adv)
        worst = worst_case_logits(logits, y, bounds, int(logits.shape[-1]))
        certified = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, worst, from_logits=True))
        return DefenseOutput(logits, y, {"certified": certified, "bound": tf.reduce_mean(bounds)},
                             clean_logits=logits)

    def get_config(self) -> dict:
        return {"radius": self.radius, "weights": dict(self.weights), "warmup_steps": self.warmup_steps,
                "power_iterations": self.power_iterations}
