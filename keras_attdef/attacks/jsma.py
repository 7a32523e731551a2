"""JSMA: the Jacobian-based saliency map attack (Papernot et al., 2016, arXiv:1511.07528), an L0 attack.

Targeted: at each iteration, over pairs of input features (p, q) not yet changed, with alpha the
gradient of the target's logit and beta the gradient of the other logits' sum, pick the pair with
alpha_p + alpha_q > 0 and beta_p + beta_q < 0 that maximises (alpha_p + alpha_q) * |beta_p + beta_q|,
and set both features to `clip_max` (theta = +1: features only increase, as the paper's MNIST runs).
It stops per sample when the target is reached or `gamma` of the features have changed.

Untargeted use (`targets=None`): a random class other than the label per sample, seeded.

Example:

>>> import numpy as np
>>> from keras_attdef import attacks, models
>>> net = models.lenet()
>>> x = np.random.rand(2, 28, 28, 1).astype("float32") * 0.5; y = np.array([0, 1])
>>> result = attacks.jsma(net, x, y, gamma=0.02, return_result=True)
>>> bool(np.nan_to_num(result.distance).max() <= 0.02 * 784 + 1)  # distance: features changed
True
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_labels, check_range
from keras_attdef.attacks.registry import register
from keras_attdef.attacks.result import AttackResult


def _target_gradients(model, flat, shape, targets):
    """alpha (the target logit's gradient), beta (the other logits' summed gradient) and the predictions."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(flat)
        logits = model(tf.reshape(flat, shape), training=False)
        target = tf.gather(logits, targets, axis=1, batch_dims=1)
        total = tf.reduce_sum(logits, -1)
    alpha = tape.gradient(target, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    beta = tape.gradient(total, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO) - alpha
    return alpha, beta, tf.argmax(logits, -1, output_type=tf.int32)


def _best_pairs(alpha, beta, domain, pool):
    """Per sample, the admissible feature pair with the largest saliency; `(first, second, found)`."""
    index, candidates = None, domain
    if pool is not None:  # the admissible features that raise the target most and the others least
        index = tf.math.top_k(tf.where(domain, alpha - beta, -np.inf), pool).indices
        alpha, beta, candidates = (tf.gather(v, index, batch_dims=1) for v in (alpha, beta, domain))
    size = tf.shape(alpha)[1]
    pair_alpha = alpha[:, :, None] + alpha[:, None, :]
    pair_beta = beta[:, :, None] + beta[:, None, :]
    allowed = tf.logical_and(candidates[:, :, None], candidates[:, None, :])
    allowed = tf.logical_and(allowed, ~tf.eye(size, dtype=tf.bool)[None])
    good = tf.logical_and(allowed, tf.logical_and(pair_alpha > 0, pair_beta < 0))
    scores = tf.reshape(tf.where(good, pair_alpha * -pair_beta, -1.0), [tf.shape(alpha)[0], -1])
    best = tf.argmax(scores, -1, output_type=tf.int32)
    first, second = best // size, best % size
    if index is not None:  # pool positions back to feature indices
        first, second = (tf.gather(index, i, batch_dims=1) for i in (first, second))
    return first, second, tf.reduce_max(scores, -1) > 0


def _saliency_loop(model, x, targets, max_iterations: int, pool, clip_max: float):
    """Sets the best pair of features to `clip_max` per iteration until every sample reaches its target."""
    batch, features = tf.shape(x)[0], int(np.prod(x.shape[1:]))

    def body(i, flat, domain, done):
        alpha, beta, predictions = _target_gradients(model, flat, tf.shape(x), targets)
        done = tf.logical_or(done, tf.equal(predictions, targets))
        first, second, found = _best_pairs(alpha, beta, domain, pool)
        chosen = tf.one_hot(first, features) + tf.one_hot(second, features)
        act = tf.logical_and(found, tf.logical_not(done))
        chosen = tf.where(act[:, None], tf.minimum(chosen, 1.0), 0.0)
        flat = flat * (1 - chosen) + clip_max * chosen
        domain = tf.logical_and(domain, chosen < 0.5)
        # a sample with no admissible pair is stuck: it stops as done (and counts as failed)
        return i + 1, flat, domain, tf.logical_or(done, tf.logical_not(found))

    flat = tf.reshape(x, [batch, features])
    _, flat, _, _ = tf.while_loop(
        lambda i, f, d, done: tf.logical_and(i < max_iterations, tf.logical_not(tf.reduce_all(done))), body,
        (tf.constant(0), flat, flat < clip_max, tf.zeros([batch], tf.bool)))
    x_adv = tf.reshape(flat, tf.shape(x))
    predictions = tf.argmax(model(x_adv, training=False), -1, output_type=tf.int32)
    return x_adv, tf.equal(predictions, targets)


@register("jsma", traceable=False)
def jsma(model, x, y, targets=None, gamma: float = 0.15, seed: int = 0, clip_min: float = 0.0,
         clip_max: float = 1.0, batch_size: int = 64, pool: int | None = None, return_result: bool = False):
    """JSMA (theta = +1) on a batch; see the module doc.

    Args:
        model: a Keras model returning logits.
        x: clean batch in [clip_min, clip_max].
        y: true labels.
        targets: target class per sample; None picks a random other class per sample.
        gamma: largest share of features changed.
        seed: seeds the random targets.
        clip_min: smallest valid input value.
        clip_max: largest valid input value (changed features are set to it).
        batch_size: samples per chunk (the pair scores take batch * features^2 floats, or batch * pool^2).
        pool: None searches every pair of features (the paper's JSMA; fine for MNIST's 784). An integer
            searches the pairs among the `pool` admissible features with the largest alpha - beta at each
            iteration: an approximation that makes colour images (3,072 features: 9.4M pairs per image
            and iteration) tractable.
        return_result: return an `AttackResult` (success, features changed as `distance`, targets) instead
            of the batch.

    Returns:
        The adversarial batch (a tensor), or an `AttackResult`.
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}.")
    x = check_range(tf.convert_to_tensor(x, tf.float32), clip_min, clip_max)
    labels = check_labels(y, x, getattr(model, "output_shape", [None])[-1])
    num_classes = int(model.output_shape[-1])
    batch, shape = int(x.shape[0]), x.shape
    features = int(np.prod(shape[1:]))
    if targets is None:
        shift = np.random.default_rng(seed).integers(1, num_classes, size=batch)
        targets = (labels.numpy() + shift) % num_classes
    targets = tf.constant(np.asarray(targets).reshape(-1), tf.int32)
    max_iterations = int(np.floor(gamma * features / 2))
    if pool is not None:
        pool = int(min(pool, features))
        if pool < 2:
            raise ValueError(f"pool must be at least 2 features, got {pool}.")
    # explicit tf.while_loop: nothing for AutoGraph to convert
    run = tf.function(functools.partial(_saliency_loop, model, max_iterations=max_iterations, pool=pool,
                                        clip_max=clip_max), reduce_retracing=True, autograph=False)
    chunks = [run(x[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, batch, batch_size)]
    x_adv = tf.concat([c[0] for c in chunks], 0)
    success = tf.concat([c[1] for c in chunks], 0)
    if return_result:
        success = success.numpy()
        changed = np.sum(np.reshape(np.abs(x_adv.numpy() - x.numpy()) > 0, (batch, -1)), axis=1)
        return AttackResult(x_adv.numpy(), success, distance=np.where(success, changed, np.nan),
                            targets=targets.numpy())
    return x_adv
