"""A gradient-masking audit: named flags that travel with a robustness number.

A defence that hides its gradients (quantised inputs, randomness, saturated softmax) looks robust under
gradient attacks and is not. Each flag is a symptom from Carlini et al., "On Evaluating Adversarial
Robustness" (arXiv:1902.06705), and Athalye et al. (arXiv:1802.00420):

- `gradient_free_beats_white_box`: a gradient-free or transfer attack did better than every white-box one.
- `accuracy_grows_with_eps`: accuracy went up as the budget grew.
- `accuracy_grows_with_steps`: accuracy went up with more attack iterations.
- `adversarial_above_clean`: an attack left more points correct than the clean inputs.
- `zero_gradients`: the loss's input gradient is exactly zero on a share of the points.
- `randomised_outputs`: two forward passes on the same inputs differ.
- `probabilities_not_logits`: the outputs are non-negative rows summing to 1 (attacks on them saturate).

Example:

>>> import numpy as np
>>> from keras_attdef import models
>>> from keras_attdef.evaluation.audit import model_checks
>>> x = np.random.rand(8, 28, 28, 1).astype("float32"); y = np.arange(8)
>>> sorted(model_checks(models.lenet(), x, y))
['probabilities_not_logits', 'randomised_outputs', 'zero_gradients']
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_attdef.attacks.engine import objective_gradient
from keras_attdef.attacks.objectives import classification_objective

# A difference smaller than this many points (of 100) is noise, not a symptom.
TOLERANCE = 0.5 / 100
ZERO_GRADIENT_SHARE = 0.05


@dataclasses.dataclass
class Flag:
    """One audit check: `raised` and a sentence of evidence."""

    raised: bool
    detail: str


def model_checks(model, x, y, batch_size: int = 256) -> dict:
    """The checks that need only the model and a batch: gradients, randomness, probabilities."""
    x = tf.constant(x[:batch_size], tf.float32)
    y = tf.constant(np.asarray(y[:batch_size]), tf.int32)
    grad = objective_gradient(classification_objective(model, y), x)  # zeros where no gradient path exists
    zero = np.all(np.reshape(np.asarray(grad), (len(x), -1)) == 0, axis=1)
    first = np.asarray(model(x, training=False))
    second = np.asarray(model(x, training=False))
    spread = float(np.max(np.abs(first - second)))
    rows_sum_to_one = np.allclose(first.sum(-1), 1.0, atol=1e-3) and first.min() >= 0
    return {
        "zero_gradients": Flag(bool(zero.mean() > ZERO_GRADIENT_SHARE),
                               f"{100 * zero.mean():.1f}% of {len(x)} points have an all-zero input gradient"),
        "randomised_outputs": Flag(spread > 1e-5, f"two forward passes differ by up to {spread:.3g}"),
        "probabilities_not_logits": Flag(bool(rows_sum_to_one),
                                         "outputs are non-negative and sum to 1: pass logits (drop the softmax)"
                                         if rows_sum_to_one else "outputs look like logits"),
    }


def rise_margin(low: float, high: float, num_samples: int | None) -> float:
    """How far a curve may rise from `low` to `high` by chance: TOLERANCE, or two standard errors if larger.

    The points of a curve are different attacks on `num_samples` points, each an estimate with binomial
    noise; a rise within two standard errors of their difference (e.g. 1.2 points on 500 digits at 4%
    accuracy) is noise, not the large rise that masked gradients give.
    """
    if not num_samples:
        return TOLERANCE
    spread = np.sqrt((low * (1 - low) + high * (1 - high)) / num_samples)
    return max(TOLERANCE, 2.0 * float(spread))


def curve_checks(accuracy: dict, clean: float, white_box: list, black_box: list, eps_curve: dict | None = None,
                 steps_curve: dict | None = None, num_samples: int | None = None) -> dict:
    """The checks on measured accuracies.

    Args:
        accuracy: `{attack name: accuracy}`.
        clean: clean accuracy.
        white_box: names (in `accuracy`) of gradient attacks.
        black_box: names of gradient-free and transfer attacks.
        eps_curve: `{eps: accuracy}` of one attack over budgets.
        steps_curve: `{steps: accuracy}` of one attack over iteration counts.
        num_samples: points behind each accuracy; with it, a curve's rise must also exceed its sampling
            noise (`rise_margin`).
    """
    flags = {}
    best_white = min((accuracy[n] for n in white_box), default=None)
    best_black = min((accuracy[n] for n in black_box), default=None)
    if best_white is not None and best_black is not None:
        name = min(black_box, key=accuracy.get)
        flags["gradient_free_beats_white_box"] = Flag(
            best_black < best_white - TOLERANCE,
            f"{name} {100 * best_black:.2f}% vs the best white-box attack {100 * best_white:.2f}%")
    above = {n: a for n, a in accuracy.items() if a > clean + TOLERANCE}
    flags["adversarial_above_clean"] = Flag(bool(above), f"above clean {100 * clean:.2f}%: {sorted(above) or 'none'}")
    for key, curve in (("accuracy_grows_with_eps", eps_curve), ("accuracy_grows_with_steps", steps_curve)):
        if curve:
            points = sorted(curve.items())
            rises = [(a, b) for (a, acc_a), (b, acc_b) in zip(points, points[1:])
                     if acc_b > acc_a + rise_margin(acc_a, acc_b, num_samples)]
            flags[key] = Flag(bool(rises), f"rises between {rises}" if rises else "never rises")
    return flags
