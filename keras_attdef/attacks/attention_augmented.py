"""A3: attention-augmented attacks (supplement B of the extended AAD paper, arXiv:1811.09831, eq. 10-12).

Any gradient attack of this package becomes its A3 variant by adding to what it raises the attention
deviation `sigma * ||Att(x) - g(x_adv)||_1`, where Att(x) is the clean image's binary attention area and
g(x_adv) the Grad-CAM map of the adversarial image for the clean label (raw, as the paper; or
max-normalised with `normalize="max"`). The attack's
gradient then also pushes the attention away from where it was, which needs the input gradient of a
Grad-CAM map: a second-order gradient.

Whether A3 is stronger than its base attack depends on the model: every step is a sign step, so the
attention term competes with the classification loss for each pixel's sign. The paper's Table 9
(ImageNet) reports A3 slightly stronger; docs/results.md has what it does on MNIST LeNets. Check on your
model before relying on it.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from keras_attdef.inputs import check_labels
from keras_attdef.attacks.registry import get, register
from keras_attdef.attention.areas import attention_area
from keras_attdef.attention.gradcam import grad_cam
from keras_attdef.models import last_conv_layer


def attention_deviation(model, x, labels, sigma: float, layer: str | None = None, kappa="mean",
                        normalize: str | None = None):
    """The A3 term as a function of x_adv: `sigma * ||Att(x) - g(x_adv)||_1` per sample."""
    layer = layer or last_conv_layer(model)
    clean_area = attention_area(grad_cam(model, x, layer, target=labels, normalize="max"), kappa)

    def deviation(x_adv):
        maps = grad_cam(model, x_adv, layer, target=labels, normalize=normalize)
        return sigma * tf.reduce_sum(tf.abs(clean_area - maps), axis=[1, 2])

    return deviation


def attention_augmented(attack: Callable, sigma: float = 10.0, layer: str | None = None,
                        kappa="mean", normalize: str | None = None) -> Callable:
    """Wraps a gradient attack into its A3 variant with the same signature.

    Args:
        attack: `fgsm`, `step_ll`, `iter_ll`, `pgd`, ... (anything taking `extra_objective`).
        sigma: weight of the attention deviation (10 in the paper).
        layer: Grad-CAM layer (default the topmost conv layer).
        kappa: attention threshold of Att(x).
        normalize: None (raw Grad-CAM map, as eq. 10-12) or `"max"` (per-map scaling: the term then
            measures where attention sits, not how strong it is).

    Returns:
        `a3(model, x, y, **kwargs)`. Without labels (StepLL, Iter-LL) Grad-CAM targets the prediction.
    """

    def a3(model, x, y=None, **kwargs):
        x = tf.convert_to_tensor(x)
        labels = None if y is None else check_labels(y, x)
        if labels is None:
            labels = tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)
        extra = attention_deviation(model, x, labels, sigma, layer, kappa, normalize)
        return attack(model, x, y, extra_objective=extra, **kwargs)

    a3.__name__ = f"a3_{getattr(attack, '__name__', 'attack')}"
    a3.__doc__ = f"A3 variant (sigma={sigma}) of {getattr(attack, '__name__', 'the attack')}."
    return a3


def a3_attack(model, x, y=None, base: str = "step_ll", sigma: float = 10.0, layer: str | None = None,
              **kwargs):
    """Registry form: `AttackSpec("a3", base="pgd", sigma=10, eps=...)`."""
    return attention_augmented(get(base), sigma, layer)(model, x, y, **kwargs)


register("a3", a3_attack)


def map_pgd(model, x, y, eps: float, weight: float = 1.0, distance: str = "cosine", method: str = "grad_cam",
            activation: str = "none", layer: str | None = None, **pgd_kwargs):
    """The adaptive attack on an attention defence: PGD raising its loss plus its own map distance.

    A defence with a map term is judged against an attacker who knows it: each step raises
    `CE(f(x_adv), y) + weight * D(g(x), g(x_adv))` with the defence's own maps g (`method`, `activation`,
    `layer`) and distance D (`losses.map_distance`), so examples that fool the classifier by also moving
    its attention are not missed because the map term flattened the cross-entropy's gradient.

    Args:
        model: a Keras classifier returning logits.
        x: clean batch.
        y: true labels.
        eps: Linf budget (or `norm="l2"` in `pgd_kwargs`).
        weight: weight of the map distance in the objective.
        distance: the defence's map distance.
        method: the defence's map method.
        activation: the defence's map activation.
        layer: the defence's map layer (default the topmost conv layer).
        **pgd_kwargs: `steps`, `step_size`, `restarts`, ... of `attacks.pgd`.

    Returns:
        The adversarial batch.

    Example:

    >>> import numpy as np
    >>> from keras_attdef import AttackSpec, models
    >>> x = np.random.rand(2, 28, 28, 1).astype("float32")
    >>> adv = AttackSpec("map_pgd", eps=0.1, steps=2)(models.small_cam_lenet(), x, np.array([1, 2]))
    >>> float(np.abs(np.asarray(adv) - x).max()) <= 0.1 + 1e-6
    True
    """
    x = tf.convert_to_tensor(x, tf.float32)
    labels = check_labels(y, x)
    deviation = map_deviation(model, x, labels, distance, method, activation, layer)
    return get("pgd")(model, x, labels, eps, extra_objective=lambda x_adv: weight * deviation(x_adv),
                      **pgd_kwargs)


def map_deviation(model, x, labels, distance: str = "cosine", method: str = "grad_cam", activation: str = "none",
                  layer: str | None = None):
    """`x_adv -> D(g(x), g(x_adv))` per example: how far moving `x` moves its class maps g for `labels`.

    The clean maps are computed once and held constant; the returned function is differentiable in
    `x_adv` (the map part of `map_pgd`'s objective, and what `evaluation.map_gradient_check` probes).
    """
    from keras_attdef.losses import map_distance

    layer = layer or last_conv_layer(model)

    def maps(images):
        return grad_cam(model, images, layer, target=labels, method=method, activation=activation)

    clean = tf.stop_gradient(maps(x))
    return lambda x_adv: map_distance(clean, maps(x_adv), distance)


register("map_pgd", map_pgd)
