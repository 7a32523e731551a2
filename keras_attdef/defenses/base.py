"""The defence interface: a serialisable config plus `perturb` and `loss_terms`.

`RobustModel.train_step` runs, for any defence:

    adv = defense.perturb(model, x, y, scale)            # inference mode, outside the tape
    with tape:
        out = defense.loss_terms(model, x, y, adv)     # training mode
        loss = compiled_loss(out.task_labels, out.task_logits) + sum(weights[k] * out.terms[k])

A new defence is one subclass registered with `register_defense`, not a branch in `train_step`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from keras_attdef.attacks.spec import AttackSpec, as_spec

_DEFENSES: dict[str, type] = {}


def register_defense(cls):
    """Class decorator: makes `cls` loadable from its config under `cls.name`."""
    _DEFENSES[cls.name] = cls
    return cls


@dataclasses.dataclass
class DefenseOutput:
    """What `loss_terms` hands the training step.

    Attributes:
        task_logits: logits the compiled loss is applied to against the true labels; entries are
            concatenated, and each may stack several batches (a 50/50 clean/adversarial mix is
            `[clean, adv]` or one tensor of both).
        terms: extra loss terms, each a batch-mean scalar (unweighted, unscaled).
        clean_logits: logits on clean inputs, if computed (for the compiled metrics).
        adv_logits: logits on the main adversarial batch, if any (for `adv_accuracy`).
        task_weight: weight of the compiled loss (AAD's alpha).
    """

    task_logits: list
    terms: dict
    clean_logits: Any = None
    adv_logits: Any = None
    task_weight: float = 1.0


class Defense:
    """Base class. Subclasses set `name`, `term_names` and implement `perturb` and `loss_terms`.

    Args:
        attack: the attack that makes training examples (`AttackSpec`, its dict, or None).
        weights: weight of each extra term, by name.
        warmup_steps: ramp the attack budget linearly from 1/warmup_steps of eps to eps over this many
            optimizer steps (0: full budget from the start). Training at the full budget from scratch can
            stall at chance on MNIST; a ramp avoids that.
    """

    name = "base"
    term_names: tuple = ()

    def __init__(self, attack=None, weights: dict | None = None, warmup_steps: int = 0):
        self.attack: AttackSpec | None = None if attack is None else as_spec(attack)
        self.weights = dict(weights or {})
        unknown = set(self.weights) - set(self.term_names)
        if unknown:
            raise ValueError(f"{self.name} has no loss terms {sorted(unknown)}; its terms are {self.term_names}.")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
        self.warmup_steps = int(warmup_steps)

    # -- the two functions the step calls ---------------------------------------------------------
    def perturb(self, model, x, y, scale=None):
        """Adversarial inputs for this batch (a tensor, a list of tensors, or None). Inference mode."""
        if self.attack is None:
            return None
        return self.attack(model, x, y, scale=scale)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------
    def budget_scale(self, iterations):
        """Fraction of the attack budget at this optimizer step (the warm-up ramp)."""
        if not self.warmup_steps:
            return None
        step = tf.cast(iterations, tf.float32) + 1.0
        return tf.minimum(1.0, step / float(self.warmup_steps))

    def attach(self, model) -> None:
        """Called once by `RobustModel` with the model it trains (to size state kept by the defence)."""

    @property
    def auxiliary_models(self) -> list:
        """Models or layers the defence holds besides the trained model (a teacher, trained duals); their
        weights are saved with it and, if trainable, trained with it."""
        return []

    # -- serialisation ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "attack": None if self.attack is None else self.attack.get_config(),
            "weights": dict(self.weights),
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Defense":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def serialize(defense: Defense) -> dict:
    """`{"name": ..., "config": ...}`, readable by `deserialize`."""
    return {"name": defense.name, "config": defense.get_config()}


def deserialize(config: dict) -> Defense:
    name = config["name"]
    if name not in _DEFENSES:
        raise ValueError(f"Unknown defence {name!r}; known: {sorted(_DEFENSES)}.")
    return _DEFENSES[name].from_config(config["config"])
