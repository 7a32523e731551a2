"""`autoattack`: the AutoAttack-style cascade (Croce and Hein, 2020, arXiv:2003.01690) on any Keras model.

The attacks run one after the other, each only on the points every earlier attack left correctly
classified; a point counts as robust only if it survives all of them, and the first adversarial example
found is kept per point. Versions:

- `"standard"`: APGD-CE (100 steps), APGD-T (9 target classes, 100 steps each), FAB-T (9 target
  classes, 100 steps each) and Square (5,000 queries), as the standard AutoAttack.
- `"fast"`: APGD-CE (100 steps) and APGD-T (3 targets, 100 steps): cheaper and clearly weaker; a figure
  from it is labelled "AutoAttack-style (fast)".

Example:

>>> import numpy as np
>>> from keras_attdef import models
>>> from keras_attdef.evaluation import autoattack
>>> net = models.lenet()
>>> x = np.random.rand(6, 28, 28, 1).astype("float32"); y = np.arange(6) % 10
>>> result = autoattack(net, x, y, eps=0.3, version="fast", steps=5, progress=False)
>>> result.accuracy["robust"] <= result.accuracy["clean"]
True
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_eps, check_inputs
from keras_attdef.attacks.spec import compile_attack
from keras_attdef.evaluation.precision import attack_model
from keras_attdef.evaluation.suites import cascade_parts
from keras_attdef.models import predict_labels, unwrap


@dataclasses.dataclass
class AutoAttackResult:
    """The cascade's outcome.

    Attributes:
        x_adv: per point, the first adversarial example found, else the clean input.
        robust: per point, correctly classified on the clean input and under every attack.
        fooled_by: per point, the name of the attack that fooled it first (`"clean"` when misclassified
            already, None when robust).
        accuracy: `clean`, then the accuracy after each attack of the cascade, and `robust` (the last).
        seconds: wall time per attack.
        label: how to cite the figure, e.g. `"AutoAttack-style (standard), Linf eps=0.3"`.
    """

    x_adv: np.ndarray
    robust: np.ndarray
    fooled_by: list
    accuracy: dict
    seconds: dict
    label: str


def autoattack(model, x, y, eps: float, norm: str = "linf", version: str = "standard", batch_size: int = 500,
               steps: int = 100, queries: int = 5000, seed: int = 0, progress: bool = True,
               clip_min: float = 0.0, clip_max: float = 1.0, precision: str = "float32") -> AutoAttackResult:
    """Runs the AutoAttack-style cascade; see the module doc for the versions.

    Args:
        model: a Keras classifier returning logits, or a `RobustModel`.
        x: images in [clip_min, clip_max].
        y: integer labels.
        eps: budget in `norm`.
        norm: `"linf"` or `"l2"`.
        version: `"standard"` or `"fast"`.
        batch_size: points attacked at once.
        steps: APGD iterations.
        queries: Square's query budget.
        seed: seeds the random starts and Square.
        progress: a progress bar per attack.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        precision: `"float32"`, or `"bfloat16"` to run the attacks' passes on a bfloat16 copy: about 1.6x
            faster here, every point still judged on the float32 model, but weaker (0.6 points on the main
            job's model; the label says so; `evaluation.precision`). Cite float32 figures.

    Returns:
        An `AutoAttackResult`.

    Raises:
        ValueError: negative eps, unknown norm or version, labels out of range, NaN or out-of-range
            inputs, or a model whose output is not a class vector.
    """
    check_eps(eps)
    if norm not in ("linf", "l2"):
        raise ValueError(f"Unknown norm {norm!r}; choose 'linf' or 'l2'.")
    base = unwrap(model)
    x, y = check_inputs(base, x, y, clip_min, clip_max)
    runners = cascade_runners(base, eps, norm, version, steps, queries, seed, clip_min, clip_max, precision)
    tf.random.set_seed(seed)
    result = run_cascade(base, runners, x, y, batch_size, progress)
    result.label = f"AutoAttack-style ({version}), {'Linf' if norm == 'linf' else 'L2'} eps={eps:g}"
    if precision != "float32":  # a weaker attack than the standard's: the figure must say so
        result.label += f", attacks in {precision}"
    return result


def cascade_runners(base, eps: float, norm: str = "linf", version: str = "standard", steps: int = 100,
                    queries: int = 5000, seed: int = 0, clip_min: float = 0.0, clip_max: float = 1.0,
                    precision: str = "float32") -> dict:
    """`{part name: compiled attack}` in cascade order: traced once per model, reused over batches.

    The attacks run on `attack_model(base, precision)`; `run_cascade` judges their candidates on `base`.
    """
    attacked = attack_model(base, precision)
    return {name: compile_attack(spec, attacked, clip_min, clip_max)
            for name, spec in cascade_parts(eps, norm, version, steps, queries, seed).items()}


def run_cascade(base, runners: dict, x, y, batch_size: int = 500, progress: bool = False) -> AutoAttackResult:
    """The cascade of `runners` on checked inputs: each part only on the points every earlier part left."""
    correct = predict_labels(base, x, batch_size) == y
    robust = correct.copy()
    x_adv = x.copy()
    fooled_by = [None if c else "clean" for c in correct]
    accuracy = {"clean": float(correct.mean())}
    seconds = {}
    for name, run in runners.items():
        start = time.time()
        todo = np.flatnonzero(robust)
        chunks = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"{name} ({len(todo)} points)", unit="batch")
        for index in chunks:
            candidate = np.asarray(run(tf.constant(x[index]), tf.constant(y[index])))
            fooled = predict_labels(base, candidate, batch_size) != y[index]
            hit = index[fooled]
            x_adv[hit] = candidate[fooled]
            robust[hit] = False
            for i in hit:
                fooled_by[i] = name
        accuracy[f"after {name}"] = float(robust.mean())
        seconds[name] = time.time() - start
    accuracy["robust"] = float(robust.mean())
    return AutoAttackResult(x_adv, robust, fooled_by, accuracy, seconds, "AutoAttack-style")
