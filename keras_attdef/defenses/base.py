"""The defence contract: a serialisable config plus two functions, `perturb` and `loss_terms`.

`RobustModel.train_step` runs, for every defence:

    adv = defense.perturb(model, x, y, scale)        # inference mode, outside the gradient tape
    with tape:
        out = defense.loss_terms(model, x, y, adv)  # training mode
        loss = out.task_weight * compiled_loss(out.task_labels, out.task_logits)
               + sum(defense.weights[k] * out.terms[k])

A new defence is one `Defense` subclass decorated with `register_defense` and, for users, one preset in
`defenses/presets.py`: nothing in `RobustModel`, the CLI or the tests names it.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import tensorflow as tf

from keras_attdef.attacks.spec import AttackSpec, as_spec

_DEFENSES: dict[str, type] = {}


def register_defense(cls):
    """Class decorator: makes `cls` loadable from its config under `cls.name`."""
    _DEFENSES[cls.name] = cls
    return cls


def registered_defenses() -> dict[str, type]:
    """`{name: class}` of every registered defence."""
    return dict(_DEFENSES)


@dataclasses.dataclass
class DefenseOutput:
    """What `loss_terms` hands the training step.

    Attributes:
        task_logits: logits the compiled loss is applied to, one row per example (a defence that trains
            on clean and adversarial inputs stacks them: `(copies * batch, classes)`).
        task_labels: the label of every row of `task_logits`.
        terms: extra loss terms by name, each a batch-mean scalar (unweighted, unscaled).
        task_rows: for every row of `task_logits`, the index of its example in the batch (int32); sample
            weights follow it. None: the rows are the batch itself.
        clean_logits: logits on the clean batch, if computed (the compiled metrics use them).
        adv_logits: logits on the main adversarial batch, if any (for `adv_accuracy`).
        task_weight: weight of the compiled loss (AAD's alpha).
        metrics: values logged but not trained on, by name (e.g. `empty_map_rate`: the share of the
            batch's attention maps that are zero everywhere); keys are the defence's `metric_names`.
    """

    task_logits: tf.Tensor
    task_labels: tf.Tensor
    terms: dict
    task_rows: Any = None
    clean_logits: Any = None
    adv_logits: Any = None
    task_weight: float = 1.0
    metrics: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def stacked(cls, logits, y, copies: int, terms: dict, **kwargs) -> "DefenseOutput":
        """Output whose task logits stack `copies` whole batches in the order of `y` (e.g. `[clean, adv]`)."""
        if copies == 1:
            return cls(logits, y, terms, **kwargs)
        rows = tf.tile(tf.range(tf.shape(y)[0]), [copies])
        return cls(logits, tf.gather(y, rows), terms, task_rows=rows, **kwargs)


class Defense:
    """Base class. Subclasses set `name`, `term_names`, `default_weights` and implement `loss_terms`.

    Args:
        attack: the attack that makes training examples (`AttackSpec`, its dict, or None).
        weights: weights of the extra terms by name; they update `default_weights` (a term not given
            keeps its default).
        warmup_steps: ramp the attack budget linearly from 1/warmup_steps of eps to eps over this many
            optimizer steps (0: full budget from the start). Training at the full budget from scratch can
            stall at chance on MNIST; a ramp avoids that.
    """

    name: ClassVar[str] = "base"
    term_names: ClassVar[tuple] = ()
    default_weights: ClassVar[dict] = {}
    metric_names: ClassVar[tuple] = ()

    def __init__(self, attack=None, weights: dict | None = None, warmup_steps: int = 0):
        self.attack: AttackSpec | None = None if attack is None else as_spec(attack)
        unknown = set(weights or {}) - set(self.term_names)
        if unknown:
            raise ValueError(f"{self.name} has no loss terms {sorted(unknown)}; its terms are {self.term_names}.")
        self.weights = {**self.default_weights, **(weights or {})}
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
        self.warmup_steps = int(warmup_steps)

    # -- the two functions the step calls ---------------------------------------------------------
    def perturb(self, model, x, y, scale=None):
        """The adversarial material of this batch, made in inference mode outside the gradient tape.

        Args:
            model: the classifier being trained.
            x: the clean batch.
            y: its integer labels.
            scale: the warm-up ramp's fraction of the budget (a scalar tensor), or None for the full budget.

        Returns:
            Whatever this defence's `loss_terms` takes as `adv`: a tensor or a tuple of tensors, or None,
            with no gradient path to the weights. Adversarial training returns the adversarial batch;
            AAD a tuple of one batch per round; certified training the input-box radius in force.
        """
        if self.attack is None:
            return None
        return self.attack(model, x, y, scale=scale)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        """The logits the compiled loss trains on, with their labels, and the defence's extra terms.

        Runs inside the gradient tape: every forward pass here is in training mode and is trained through.

        Args:
            model: the classifier being trained.
            x: the clean batch.
            y: its integer labels.
            adv: what `perturb` returned for this batch.

        Returns:
            A `DefenseOutput` whose `terms` has exactly the keys of `term_names`.
        """
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------
    def budget_scale(self, iterations):
        """Fraction of the attack budget at this optimizer step (the warm-up ramp)."""
        if not self.warmup_steps:
            return None
        step = tf.cast(iterations, tf.float32) + 1.0
        return tf.minimum(1.0, step / float(self.warmup_steps))

    def term_scales(self, iterations) -> dict:
        """Per term, a factor on its weight at this optimizer step (a term that ramps in); {}: none."""
        return {}

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
    """The defence `serialize` described; `config` is left as it was (Keras consumes nested model configs)."""
    name = config["name"]
    if name not in _DEFENSES:
        raise ValueError(f"Unknown defence {name!r}; known: {sorted(_DEFENSES)}.")
    return _DEFENSES[name].from_config(copy.deepcopy(config["config"]))
