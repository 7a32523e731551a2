"""`AttackResult`: what an attack found per sample beyond the adversarial batch, one type for every attack.

Attacks return the adversarial batch by default, so they compose (`model(attack(model, x, y))`). The ones
that know more (minimal-norm attacks know the size of the change, Square its queries, JSMA its targets,
stAdv its flow fields) return an `AttackResult` with `return_result=True` (stAdv always does).

Example:

>>> from keras_attdef import attacks, datasets, models
>>> x, y = datasets.load("mnist", "test", limit=4)
>>> result = attacks.square(models.lenet(), x, y, eps=0.3, queries=10, seed=0, return_result=True)
>>> result.x_adv.shape, result.success.dtype.name, result.queries.shape
((4, 28, 28, 1), 'bool', (4,))
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class AttackResult:
    """An attack's outcome per sample (numpy arrays).

    Attributes:
        x_adv: the adversarial batch (the clean input where a minimal-norm attack found nothing within its
            budget).
        success: the attack reached its goal: the label left (untargeted) or the target reached (targeted).
        distance: the smallest change found, in the attack's own measure (C&W: L2; FAB: its norm, possibly
            beyond `eps`, then not a success; JSMA: features changed; stAdv: the flow loss); NaN where the
            attack found none. None for attacks with no measure of their own (Square).
        queries: model queries used (Square), else None.
        targets: the target class per sample (JSMA), else None.
        flow: the flow field per sample (stAdv), else None.
    """

    x_adv: np.ndarray
    success: np.ndarray
    distance: np.ndarray | None = None
    queries: np.ndarray | None = None
    targets: np.ndarray | None = None
    flow: np.ndarray | None = None
