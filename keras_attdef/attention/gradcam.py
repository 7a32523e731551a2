"""Batched, differentiable Grad-CAM (Selvaraju et al., 2017).

`grad_cam` splits the model at the conv layer and runs it once: the same pass gives the logits and the
feature maps A; the class score's gradient w.r.t. A, averaged over space, weights the channels, and the
map is ReLU(sum_c w_c A_c). Everything is a TF op, so a loss on the map has gradients w.r.t. the weights
(second order: the gradient of a gradient) and w.r.t. the input.

Example:

>>> import numpy as np
>>> from keras_attdef import attention, models
>>> net = models.lenet()
>>> x = np.random.rand(2, 28, 28, 1).astype("float32")
>>> maps, logits = attention.grad_cam(net, x, "conv2", return_logits=True)
>>> tuple(maps.shape), tuple(logits.shape)
((2, 14, 14), (2, 10))
"""
from __future__ import annotations

import tensorflow as tf

from keras_attdef.attention.split import split_model
from keras_attdef.models import last_conv_layer

_TINY = 1e-8
CAM_METHODS = ("grad_cam", "grad_x_activation", "integrated_gradients")
# Points on the path from a black image to the input for "integrated_gradients" (the trapezoid rule
# over IG_STEPS intervals): each map costs IG_STEPS + 1 passes of the batch instead of one.
IG_STEPS = 4
# What turns the weighted sum of feature maps into the map. "relu" is Grad-CAM's (for display); a network
# trained on a ReLU map can make it zero everywhere while it still classifies, so losses can use the
# signed map ("none") or a softplus whose scale follows the map's own ("softplus").
ACTIVATIONS = ("relu", "softplus", "none")


def activate(raw, activation: str = "relu"):
    """The map from the raw weighted sum: ReLU, a scale-following softplus, or the signed sum itself.

    The softplus is `tau * softplus(raw / tau)` with `tau` the map's mean absolute value (no gradient
    through it): close to ReLU where the map is large, never exactly zero, and the same at any scale.
    """
    if activation == "relu":
        return tf.nn.relu(raw)
    if activation == "none":
        return raw
    if activation == "softplus":
        tau = tf.stop_gradient(tf.reduce_mean(tf.abs(raw), axis=[1, 2], keepdims=True)) + _TINY
        return tau * tf.nn.softplus(raw / tau)
    raise ValueError(f"Unknown map activation {activation!r}; choose one of {ACTIVATIONS}.")


def empty_map_rate(maps):
    """Share of a batch's maps that are zero everywhere once ReLU'd: the collapse a map loss can reach.

    Example:

    >>> import tensorflow as tf
    >>> float(empty_map_rate(tf.constant([[[0.0, -1.0]], [[0.0, 2.0]]])))
    0.5
    """
    peaks = tf.reduce_max(tf.reshape(maps, [tf.shape(maps)[0], -1]), axis=-1)
    return tf.reduce_mean(tf.cast(peaks <= 0.0, tf.float32))


def normalize_maps(maps, method: str = "max"):
    """Per-map scaling: `"max"` divides by the maximum, `"minmax"` maps to [0, 1] (tf-keras-vis's way)."""
    axes = tf.range(1, tf.rank(maps))
    if method == "max":
        return maps / (tf.reduce_max(maps, axis=axes, keepdims=True) + _TINY)
    if method == "minmax":
        low = tf.reduce_min(maps, axis=axes, keepdims=True)
        return (maps - low) / (tf.reduce_max(maps, axis=axes, keepdims=True) - low + _TINY)
    raise ValueError(f"Unknown normalisation {method!r}; choose 'max' or 'minmax'.")


def grad_cam(
    model,
    x,
    layer: str | None = None,
    target=None,
    resize: bool = False,
    normalize: str | None = None,
    training: bool = False,
    return_logits: bool = False,
    method: str = "grad_cam",
    activation: str = "relu",
):
    """Grad-CAM maps of a batch.

    Args:
        model: a functional Keras classifier returning logits.
        x: input batch.
        layer: name of a conv layer (4-D output); default the topmost one.
        target: class per sample (labels); default the predicted class.
        resize: bilinearly resize maps to the input's height and width.
        normalize: None (raw), `"max"` or `"minmax"` per map.
        training: run the model in training mode (inside a training step).
        return_logits: also return the logits of the same forward pass.
        method: `"grad_cam"` (channel weights = the gradient's spatial mean, Selvaraju et al.) or
            `"grad_x_activation"` (each cell's gradient times its activation, summed over channels). A
            network trained on Grad-CAM losses can make every Grad-CAM map zero (channel weights whose
            spatial mean is negative while the evidence is positive where the digit is); per-cell
            weights sum, for a piecewise-linear head, to the features' share of the target logit, which a
            classifier that is right cannot make zero everywhere without moving the evidence into biases.
            `"integrated_gradients"`: layer integrated gradients from a black image (`IG_STEPS` + 1 points on
            the path, one batched pass); the cells add up to the target logit's rise from the black image
            (completeness, Sundararajan et al. 2017), so a map cannot vanish while the class's evidence
            stands, on any architecture. In training mode batch-norm statistics see the whole path.
        activation: `"relu"` (Grad-CAM's), `"softplus"` (smooth, never exactly zero) or `"none"` (the signed
            map; on a class-activation head, `models.small_cam_lenet`, its spatial mean is the class logit up
            to the bias, so a zero map means a zero logit). See `activate`.

    Returns:
        Maps `(batch, h, w)` (and the logits when asked).

    Raises:
        ValueError: the model has no such layer, or the layer's output is not a 4-D feature map.
    """
    layer = layer or last_conv_layer(model)
    split = split_model(model, [layer])
    if len(split.outputs[0].shape) != 4:
        raise ValueError(f"Layer {layer!r} outputs shape {split.outputs[0].shape}; Grad-CAM needs a 4-D "
                         "(batch, h, w, channels) feature map, e.g. a conv layer.")
    if method not in CAM_METHODS:
        raise ValueError(f"Unknown attention method {method!r}; choose one of {CAM_METHODS}.")
    x = tf.convert_to_tensor(x)
    if method == "integrated_gradients":
        cells, logits = _layer_integrated_gradients(split, x, target, training)
    else:
        features, logits, grads = _features_and_gradients(split, x, target, training)
        if method == "grad_cam":
            grads = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        cells = tf.reduce_sum(grads * features, axis=-1)
    maps = activate(cells, activation)
    if resize:
        maps = tf.image.resize(maps[..., None], tf.shape(x)[1:3], method="bilinear")[..., 0]
    if normalize:
        maps = normalize_maps(maps, normalize)
    return (maps, logits) if return_logits else maps


def _target_score(logits, target):
    """Sum over the batch of each row's target logit (the predicted class of the last axis-0 block when
    `target` is None); `logits` is `(batch, classes)` or `(points, batch, classes)`."""
    final = logits[-1] if len(logits.shape) == 3 else logits
    classes = tf.argmax(final, axis=-1) if target is None else tf.reshape(target, [-1])
    return tf.reduce_sum(logits * tf.one_hot(tf.cast(classes, tf.int32), tf.shape(logits)[-1], dtype=logits.dtype))


def _features_and_gradients(split, x, target, training):
    """The layer's features, the logits and the target score's gradient w.r.t. the features, in one pass."""
    with tf.GradientTape() as tape:
        tape.watch(x)  # records the whole pass, so the score's gradient w.r.t. the features exists
        features, logits = split(x, training=training)
        score = _target_score(logits, target)
    return features, logits, tape.gradient(score, features)


def _layer_integrated_gradients(split, x, target, training):
    """Per-cell layer conductance: the target score's change from a black image to `x`, split over cells.

    Along the straight input path `a * x` (a from 0 to 1, `IG_STEPS` intervals, all points in one batched
    pass), sums gradient x feature change by the trapezoid rule, then over channels. By completeness the
    cells add up to `score(x) - score(0)` (up to the rule's error), so a class scored above its black-image
    score cannot have a map that is zero everywhere. Returns the cells and the logits at `x`.
    """
    points = IG_STEPS + 1
    path = tf.cast(tf.linspace(0.0, 1.0, points), x.dtype)[:, None, None, None, None] * x[None]
    with tf.GradientTape() as tape:
        tape.watch(path)
        features, logits = split(tf.reshape(path, tf.concat([[-1], tf.shape(x)[1:]], 0)), training=training)
        logits = tf.reshape(logits, [points, tf.shape(x)[0], -1])
        score = _target_score(logits, target)  # the class at the path's end, for every point
    grads = tape.gradient(score, features)
    shape = tf.concat([[points, tf.shape(x)[0]], tf.shape(features)[1:]], axis=0)
    features, grads = tf.reshape(features, shape), tf.reshape(grads, shape)
    cells = tf.reduce_sum((grads[1:] + grads[:-1]) / 2.0 * (features[1:] - features[:-1]), axis=[0, -1])
    return cells, logits[-1]
