"""Per-sample objectives that attacks maximise. Each maps logits (and labels) to a (batch,) tensor."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

Objective = Callable[[tf.Tensor], tf.Tensor]  # adversarial input -> (batch,) value to maximise


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-sample softmax cross-entropy with integer labels."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def margin(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """C&W margin: the best other logit minus the labelled one (> 0 means misclassified)."""
    num_classes = tf.shape(logits)[-1]
    onehot = tf.one_hot(labels, num_classes, dtype=logits.dtype)
    labelled = tf.reduce_sum(onehot * logits, axis=-1)
    other = tf.reduce_max(logits - onehot * 1e9, axis=-1)
    return other - labelled


def attack_margin(logits: tf.Tensor, labels: tf.Tensor, targeted: bool = False) -> tf.Tensor:
    """How far an attack is from success: <= 0 once it has succeeded (the C&W-style stopping test).

    Untargeted: the true label's logit minus the best other; targeted (`labels` are the targets): the best
    other logit minus the target's.
    """
    return margin(logits, labels) if targeted else -margin(logits, labels)


def kl_divergence(p_logits: tf.Tensor, q_logits: tf.Tensor) -> tf.Tensor:
    """Per-sample KL(softmax(p) || softmax(q)), as TRADES uses it."""
    p_log = tf.nn.log_softmax(p_logits)
    q_log = tf.nn.log_softmax(q_logits)
    return tf.reduce_sum(tf.exp(p_log) * (p_log - q_log), axis=-1)


LOSSES = {"ce": cross_entropy, "margin": margin}


def classification_objective(model, labels, loss: str = "ce", targeted: bool = False) -> Objective:
    """What an untargeted attack raises (or a targeted one lowers) on `labels`, in inference mode."""
    if loss not in LOSSES:
        raise ValueError(f"Unknown attack loss {loss!r}; choose one of {sorted(LOSSES)}.")
    loss_fn = LOSSES[loss]
    sign = -1.0 if targeted else 1.0

    def objective(x_adv):
        return sign * loss_fn(model(x_adv, training=False), labels)

    return objective


def least_likely(model, x) -> tf.Tensor:
    """The class the model finds least likely on `x` (the target of StepLL / Iter-LL)."""
    return tf.cast(tf.argmin(model(x, training=False), axis=-1), tf.int32)


def least_likely_objective(model) -> Objective:
    """What a single StepLL step raises: -CE towards the least-likely class of the point it is taken at.

    Equal to `classification_objective(model, least_likely(model, x), targeted=True)` evaluated at x, but
    one forward pass gives both the target and the loss (the separate `least_likely` pass cost a third of
    a StepLL step). Only for one step from the point the target is defined at: Iter-LL keeps the clean
    image's target over its rounds and uses the two-pass form.
    """

    def objective(x_adv):
        logits = model(x_adv, training=False)
        target = tf.stop_gradient(tf.cast(tf.argmin(logits, axis=-1), tf.int32))
        return -cross_entropy(logits, target)

    return objective
