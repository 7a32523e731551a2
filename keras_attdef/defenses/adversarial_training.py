"""Plain training and adversarial training on adversarial examples (Madry PGD-AT, fast FGSM-RS)."""
from __future__ import annotations

from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense


@register_defense
class PlainTraining(Defense):
    """No adversarial examples: the compiled loss on clean inputs (the baseline every table needs)."""

    name = "plain"

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        logits = model(x, training=True)
        return DefenseOutput(logits, y, {}, clean_logits=logits)


@register_defense
class AdversarialTraining(Defense):
    """The compiled loss on adversarial examples only (Madry et al., 2018; Wong et al., 2020)."""

    name = "adversarial_training"

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0):
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("Adversarial training needs an attack.")

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        adv_logits = model(adv, training=True)
        return DefenseOutput(adv_logits, y, {}, adv_logits=adv_logits)
