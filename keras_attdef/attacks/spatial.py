"""stAdv: spatially transformed adversarial examples (Xiao et al., 2018, arXiv:1801.02612; eq. 4-7, 14 of C. Nguyen,
"Two approaches to defend against adversarial examples", Lehigh University thesis, 2018).

The attack optimises a per-pixel flow r with Adam on

    L(r) = max(margin(f(warp(x, r))), -kappa) + tau * L_flow'(r)

where the margin is the C&W one (untargeted: true logit minus best other; targeted: best other minus the
target's), and L_flow' is the flow loss (eq. 6) or, with a `budget`, its hinge max(L_flow - budget, 0)
(eq. 14). A binary search on tau per sample (section 4.2) starts from `tau` and, over
`search_steps` rounds, raises tau when the warped image fooled the model (to shrink the flow, which
also pulls an over-budget flow back inside) and lowers it when it did not (x10 until an upper end is
found, then bisection). A sample counts as fooled only if its flow meets the budget; each sample keeps
its successful flow with the smallest loss.

Example:

>>> from keras_attdef import datasets, models
>>> from keras_attdef.attacks.spatial import stadv
>>> x, y = datasets.load("mnist", "test", limit=2)
>>> result = stadv(models.two_layer_dense(), x, y, budget=7.0, steps=5, search_steps=1)
>>> result.flow.shape, result.success.shape  # one (h, w, 2) flow field per image
((2, 28, 28, 2), (2,))
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_labels, check_range
from keras_attdef.attacks.objectives import attack_margin
from keras_attdef.attacks.result import AttackResult
from keras_attdef.flow import flow_loss, warp


def stadv(model, x, y, targeted: bool = False, budget: float | None = None, tau: float = 0.05,
          steps: int = 200, learning_rate: float = 0.01, search_steps: int = 5, kappa: float = 0.0,
          tau_max: float = 1000.0) -> AttackResult:
    """Runs stAdv on a batch.

    Args:
        model: classifier returning logits.
        x: images in [0, 1].
        y: true labels, or target labels when `targeted`.
        targeted: reach `y` instead of leaving it.
        budget: L_flow budget (7.0 in the thesis); None for the plain tau-weighted flow loss.
        tau: initial weight of the flow term.
        steps: Adam steps per search round.
        learning_rate: Adam step size (in pixels of flow).
        search_steps: binary-search rounds on tau (1: no search).
        kappa: confidence margin.
        tau_max: upper end of the tau search.

    Returns:
        An `AttackResult`: the warped images (the clean image where the attack failed), `success`, the flow
        field as `flow` and its flow loss as `distance`.
    """
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}.")
    x = check_range(tf.convert_to_tensor(x, tf.float32), 0.0, 1.0)
    labels = check_labels(y, x)
    batch = int(x.shape[0])
    shape = x.shape[:3] + (2,)

    @tf.function(reduce_retracing=True, autograph=False)  # explicit tf.while_loop: nothing to convert
    def optimise(tau_values):
        flow = tf.zeros(shape)
        m, v = tf.zeros(shape), tf.zeros(shape)

        def objective(flow):
            fl = flow_loss(flow)
            penalty = tf.nn.relu(fl - budget) if budget is not None else fl
            margin = attack_margin(model(warp(x, flow), training=False), labels, targeted)
            return tf.maximum(margin, -kappa) + tau_values * penalty

        def body(t, flow, m, v):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(flow)
                total = tf.reduce_sum(objective(flow))
            grad = tape.gradient(total, flow)
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * tf.square(grad)
            step = tf.cast(t + 1, tf.float32)
            update = (m / (1 - 0.9 ** step)) / (tf.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
            return t + 1, flow - learning_rate * update, m, v

        _, flow, _, _ = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), flow, m, v))
        margin = attack_margin(model(warp(x, flow), training=False), labels, targeted)
        return flow, margin, flow_loss(flow)

    tau_now = np.full(batch, float(tau))
    low, high = np.zeros(batch), np.full(batch, float(tau_max))
    best_flow = np.zeros(shape, np.float32)
    best_loss = np.full(batch, np.inf)
    for _ in range(max(int(search_steps), 1)):
        flow, margin, loss = (t.numpy() for t in optimise(tf.constant(tau_now, tf.float32)))
        fooled = margin < 0
        ok = fooled & (loss <= (budget if budget is not None else np.inf))
        better = ok & (loss < best_loss)
        best_flow[better], best_loss[better] = flow[better], loss[better]
        # Fooled (within budget or not): more weight on the flow; not fooled: less.
        low = np.where(fooled, tau_now, low)
        high = np.where(fooled, high, tau_now)
        tau_now = np.where(high >= tau_max, tau_now * 10, (low + high) / 2)
    success = np.isfinite(best_loss)
    x_adv = warp(x, best_flow).numpy()
    return AttackResult(x_adv, success, distance=np.where(success, best_loss, np.nan), flow=best_flow)
