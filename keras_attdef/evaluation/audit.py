"""A gradient-masking audit: named flags that travel with a robustness number.

A defence that hides its gradients (quantised inputs, randomness, saturated softmax) looks robust under
gradient attacks and is not. Each flag is a symptom from Carlini et al., "On Evaluating Adversarial
Robustness" (arXiv:1902.06705), and Athalye et al. (arXiv:1802.00420):

- `gradient_free_beats_white_box`: a gradient-free or transfer attack did better than the white-box ones;
  with per-point outcomes, better than all of them together and beyond chance (a paired sign test).
- `single_step_beats_iterative`: FGSM or StepLL did better than the iterative attacks (judged the same way).
- `accuracy_grows_with_eps`: accuracy went up as the budget grew.
- `accuracy_grows_with_steps`: accuracy went up with more attack iterations.
- `adversarial_above_clean`: an attack left more points correct than the clean inputs.
- `zero_gradients`: the loss's input gradient is exactly zero on a share of the points.
- `randomised_outputs`: two forward passes on the same inputs differ.
- `probabilities_not_logits`: the outputs are non-negative rows summing to 1 (attacks on them saturate).
- `map_term_hides_gradient` (defences with a map term, `evaluation.adaptive`): the map-adaptive attack's
  map distance has a zero input gradient (maps that are zero everywhere), so that attack is plain PGD.

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
import math

import numpy as np
import tensorflow as tf

from keras_attdef.attacks.engine import objective_gradient
from keras_attdef.attacks.objectives import classification_objective

# A difference smaller than this many points (of 100) is noise, not a symptom.
TOLERANCE = 0.5 / 100
ZERO_GRADIENT_SHARE = 0.05
# A gradient-free attack's lead over the white-box ones counts when a paired sign test gives p below this.
SIGNIFICANCE = 0.05


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


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test (McNemar on the discordant points): P(at least `wins` of `wins + losses`) at 1/2.

    Two attacks run on the same points disagree on a few of them; if they were equally strong, each
    disagreement would fall either way with probability 1/2.

    >>> round(sign_test(4, 0), 4), round(sign_test(9, 0), 4), sign_test(0, 0)
    (0.0625, 0.002, 1.0)
    """
    total = wins + losses
    return sum(math.comb(total, k) for k in range(wins, total + 1)) / 2 ** total


def _rival_beats(accuracy: dict, expected: list, rivals: list, correct: dict | None, group: str) -> Flag:
    """Whether the best of `rivals` beat the attacks `expected` to be stronger (the `group`), beyond chance."""
    name = min(rivals, key=accuracy.get)
    best_name = min(expected, key=accuracy.get)
    if not correct or not all(n in correct for n in [*expected, name]):
        return Flag(accuracy[name] < accuracy[best_name] - TOLERANCE,
                    f"{name} {100 * accuracy[name]:.2f}% vs the best of {group} ({best_name}) "
                    f"{100 * accuracy[best_name]:.2f}%")
    # Per point: the expected attacks together (a point survives only if it survives each of them).
    together = np.logical_and.reduce([np.asarray(correct[n], bool) for n in expected])
    rival = np.asarray(correct[name], bool)
    only_rival, only_together = int(np.sum(together & ~rival)), int(np.sum(~together & rival))
    p_value = sign_test(only_rival, only_together)
    raised = bool(rival.mean() < together.mean() - TOLERANCE and p_value < SIGNIFICANCE)
    return Flag(raised, f"{name} {100 * rival.mean():.2f}% vs {100 * together.mean():.2f}% for {group} together "
                        f"(best alone: {best_name} {100 * accuracy[best_name]:.2f}%); {name} alone fooled "
                        f"{only_rival} point(s), {group} alone {only_together} (sign test p = {p_value:.3g})")


def curve_checks(accuracy: dict, clean: float, white_box: list, black_box: list, eps_curve: dict | None = None,
                 steps_curve: dict | None = None, num_samples: int | None = None, correct: dict | None = None,
                 single_step: list | None = None) -> dict:
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
        correct: `{attack name: per-point bool}` on the same points; with it, the best gradient-free attack
            is compared with the white-box attacks together, point by point, and its lead must pass a
            sign test (`sign_test`, p < SIGNIFICANCE) as well as TOLERANCE. Without it, with the best
            white-box accuracy and TOLERANCE alone. The same for single-step against iterative attacks.
        single_step: names (among `white_box`) of single-step attacks (FGSM, StepLL); the other white-box
            attacks are the iterative ones, which should do at least as well.
    """
    flags = {}
    if white_box and black_box:
        flags["gradient_free_beats_white_box"] = _rival_beats(accuracy, white_box, black_box, correct,
                                                              "the white-box attacks")
    iterative = [n for n in white_box if n not in (single_step or ())]
    if single_step and iterative:
        flags["single_step_beats_iterative"] = _rival_beats(accuracy, iterative, list(single_step), correct,
                                                            "the iterative attacks")
    above = {n: a for n, a in accuracy.items() if a > clean + TOLERANCE}
    flags["adversarial_above_clean"] = Flag(bool(above), f"above clean {100 * clean:.2f}%: {sorted(above) or 'none'}")
    for key, curve in (("accuracy_grows_with_eps", eps_curve), ("accuracy_grows_with_steps", steps_curve)):
        if curve:
            points = sorted(curve.items())
            rises = [(a, b) for (a, acc_a), (b, acc_b) in zip(points, points[1:])
                     if acc_b > acc_a + rise_margin(acc_a, acc_b, num_samples)]
            flags[key] = Flag(bool(rises), f"rises between {rises}" if rises else "never rises")
    return flags
