"""Adaptive attacks on a classifier and its LAN detector together (Carlini and Wagner, 2017; Tramer et al., 2020).

A detector's figures mean little until an attacker who knows it has tried. These attacks change the
classifier's label to a target class t while pushing the mask classifier's label of the input's mask,
f2(G(x)), to the same t, so the two agree and nothing is flagged. Per image they try the `num_targets`
likeliest wrong classes and keep the first example that fools the classifier and is not flagged.

Three threat models: Linf and L2 (PGD on the joint objective) and L0 (a few whole pixels set to the
ends of the valid range: the JSMA-like attacker a rounding or median-filtering G is weakest against,
since a pixel moved all the way crosses any rounding threshold). G's input transforms pass gradients
straight through (BPDA, Athalye et al., 2018); every candidate is judged by the real pipeline.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from keras_attdef.attacks.gradient import pgd
from keras_attdef.attacks.objectives import cross_entropy

NORMS = ("linf", "l2", "l0")


def adaptive_attack(detector, x, y, eps: float, steps: int = 100, step_size: float | None = None,
                    num_targets: int = 3, mask_weight: float = 1.0, norm: str = "linf", clip_min: float = 0.0,
                    clip_max: float = 1.0):
    """Per target class t, raise `log p1(t | x) + mask_weight * log p2(t | G(x))` within the budget.

    Linf and L2: PGD on that objective. L0: greedy: each of `steps` rounds sets the
    `ceil(eps / steps)` unchanged input features whose move to `clip_min` or `clip_max` raises the
    objective most to first order; an image stops changing once it fools the classifier unflagged.

    Args:
        detector: a fitted `LatentAttentionDetector`.
        x: clean images.
        y: true labels.
        eps: budget in `norm` (L0: the number of input features that may change, e.g. 117 = JSMA's 15% of
            MNIST's 784 pixels).
        steps: PGD steps per target (L0: rounds).
        step_size: PGD step (default `2.5 * eps / steps`; unused for L0).
        num_targets: target classes tried per image.
        mask_weight: weight of the mask classifier's term.
        norm: `"linf"`, `"l2"` or `"l0"`.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The adversarial batch (the clean image where every target failed).

    Example:

    >>> import numpy as np
    >>> from keras_attdef import datasets, detect, models
    >>> x, y = datasets.load("mnist", "train", limit=256)
    >>> detector = detect.LatentAttentionDetector(models.lenet())
    >>> _ = detector.fit(x, y, generator_epochs=1, mask_epochs=1, verbose=0)
    >>> x_adv = detect.adaptive_attack(detector, x[:4], y[:4], eps=20, steps=10, norm="l0")
    >>> int(max((a != b).sum() for a, b in zip(x_adv, x[:4]))) <= 20
    True
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {NORMS}.")
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    y = np.asarray(y).astype(np.int32)
    logits = detector.classifier(x, training=False).numpy()
    logits[np.arange(len(y)), y] = -np.inf
    targets = np.argsort(-logits, axis=-1)[:, :num_targets]
    best = x.numpy().copy()
    done = np.zeros(len(y), bool)
    for k in range(num_targets):
        todo = np.flatnonzero(~done)  # later targets only for the images still caught
        if not len(todo):
            break
        target = tf.constant(targets[todo, k])

        def mask_term(x_adv, target=target):
            mask_logits = detector.mask_classifier(detector.generator(x_adv, training=False), training=False)
            return -mask_weight * cross_entropy(mask_logits, target)

        if norm == "l0":
            x_adv = _greedy_l0(detector, tf.gather(x, todo), target, y[todo], mask_term, int(eps), steps,
                               clip_min, clip_max)
        else:
            x_adv = pgd(detector.classifier, tf.gather(x, todo), target, eps=eps, steps=steps, step_size=step_size,
                        targeted=True, norm=norm, clip_min=clip_min, clip_max=clip_max,
                        extra_objective=mask_term).numpy()
        evades = _evades(detector, x_adv, y[todo])
        best[todo[evades]] = x_adv[evades]
        done[todo[evades]] = True
    return best


def _evades(detector, x_adv, y) -> np.ndarray:
    """Per image: the real pipeline (not its gradient stand-in) misclassifies it and does not flag it."""
    outputs = detector.outputs(x_adv)
    return (outputs["label"] != y) & ~outputs["adversarial"]


def _greedy_l0(detector, x, target, y, mask_term, budget: int, steps: int, clip_min: float, clip_max: float):
    """The L0 round loop of `adaptive_attack` for one target per image; returns a numpy batch."""
    if budget < 1:
        raise ValueError(f"The L0 budget (eps) must be at least one feature; got {budget}.")
    per_round = math.ceil(budget / steps)
    flat_shape = (x.shape[0], -1)
    x_adv = tf.Variable(x)
    changed = tf.zeros(tf.reshape(x, flat_shape).shape, tf.bool)
    active = np.ones(len(y), bool)
    for _ in range(math.ceil(budget / per_round)):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            objective = -cross_entropy(detector.classifier(x_adv, training=False), target) + mask_term(x_adv)
        grad = tf.reshape(tape.gradient(objective, x_adv), flat_shape)
        flat = tf.reshape(x_adv, flat_shape)
        # first-order gain of moving each feature to either end of the valid range
        up, down = grad * (clip_max - flat), grad * (clip_min - flat)
        gain = tf.maximum(up, down)
        gain = tf.where(changed | (gain <= 0) | ~tf.constant(active)[:, None], -np.inf, gain)
        _, picked = tf.math.top_k(gain, per_round)
        rows = tf.repeat(tf.range(len(y))[:, None], per_round, axis=1)
        index = tf.stack([tf.reshape(rows, [-1]), tf.reshape(picked, [-1])], axis=1)
        chosen_up = tf.gather_nd(up, index) >= tf.gather_nd(down, index)
        gained = tf.gather_nd(gain, index) > -np.inf  # inactive images pick nothing
        value = tf.where(chosen_up, clip_max, clip_min)
        flat = tf.tensor_scatter_nd_update(flat, tf.boolean_mask(index, gained), tf.boolean_mask(value, gained))
        changed = tf.tensor_scatter_nd_update(changed, tf.boolean_mask(index, gained),
                                              tf.ones(int(tf.reduce_sum(tf.cast(gained, tf.int32))), tf.bool))
        x_adv.assign(tf.reshape(flat, x.shape))
        active &= ~_evades(detector, x_adv.numpy(), y)
        if not active.any():
            break
    return x_adv.numpy()
