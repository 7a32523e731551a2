"""`AttackSpec`: an attack named by string plus its arguments, serialisable as a dict.

Defence configs and evaluation tables hold attacks this way, so a saved model knows which attack
trained it and a budget ramp can scale every length-like argument at once.

Example:

>>> spec = AttackSpec("pgd", eps=0.3, step_size=0.01, steps=40)
>>> spec.get_config()
{'name': 'pgd', 'eps': 0.3, 'step_size': 0.01, 'steps': 40}
>>> AttackSpec.from_config(spec.get_config()) == spec
True
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import tensorflow as tf

from keras_attdef.attacks.registry import get, is_traceable, register, registered

__all__ = ["AttackSpec", "as_spec", "compile_attack", "get", "register", "registered"]

# Arguments measured in input units: a budget ramp scales them together with eps.
_LENGTHS = ("eps", "step_size", "alpha")


class AttackSpec:
    """An attack by name with its keyword arguments.

    Args:
        name: a registered attack (`"fgsm"`, `"step_ll"`, `"r_step_ll"`, `"iter_ll"`, `"ifgsm"`, `"pgd"`, ...).
        **kwargs: its arguments (`eps`, `step_size`, `steps`, ...).
    """

    def __init__(self, name: str, **kwargs: Any):
        get(name)
        self.name = name
        self.kwargs = dict(kwargs)

    @property
    def eps(self) -> float:
        return self.kwargs["eps"]

    @property
    def traceable(self) -> bool:
        """Whether the attack can run inside `tf.function` (evaluation compiles it when it can)."""
        return is_traceable(self.name)

    def __call__(self, model, x, y, scale=None, **overrides):
        """Runs the attack; `scale` multiplies eps, step_size and alpha (a budget ramp)."""
        kwargs = {**self.kwargs, **overrides}
        if scale is not None:
            for key in _LENGTHS:
                if kwargs.get(key) is not None:
                    kwargs[key] = kwargs[key] * scale
        return get(self.name)(model, x, y, **kwargs)

    def get_config(self) -> dict:
        return {"name": self.name, **self.kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "AttackSpec":
        config = dict(config)
        return cls(config.pop("name"), **config)

    def __eq__(self, other) -> bool:
        return isinstance(other, AttackSpec) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"AttackSpec({self.name!r}, {args})"


def as_spec(attack) -> AttackSpec:
    """Accepts an `AttackSpec`, its config dict, or a bare name (with that attack's defaults)."""
    if isinstance(attack, AttackSpec):
        return attack
    if isinstance(attack, dict):
        return AttackSpec.from_config(attack)
    if isinstance(attack, str):
        return AttackSpec(attack)
    raise TypeError(f"Expected an AttackSpec, a dict or a name, got {type(attack).__name__}.")


def _run_spec(spec, model, x, y, clip_min, clip_max):
    return spec(model, x, y, clip_min=clip_min, clip_max=clip_max)


def compile_attack(spec: AttackSpec, model, clip_min: float = 0.0, clip_max: float = 1.0) -> Callable:
    """`f(x, y) -> x_adv` running `spec` on `model`, compiled once when the attack is traceable.

    Args:
        spec: the attack.
        model: a Keras model returning logits.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        A function of a batch `(x, y)` returning its adversarial batch (a `tf.function` unless the attack
        runs a Python loop).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> run = compile_attack(AttackSpec("fgsm", eps=0.1), model)
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> float(np.abs(run(x, np.array([0, 1])) - x).max()) <= 0.1 + 1e-6
    True
    """
    # A partial, not a lambda: tf.function counts traces per code object, so one lambda line compiled
    # for five attacks would warn about "excessive retracing" although each attack traces once.
    run = functools.partial(_run_spec, spec, model, clip_min=clip_min, clip_max=clip_max)
    # reduce_retracing: the last, shorter batch does not trigger a second trace per attack.
    # autograph=False: attacks are written for graph mode already (Python loops, tf.while_loop), and
    # AutoGraph converting the AttackSpec callable has resolved the wrong method after a Keras fit.
    return tf.function(run, reduce_retracing=True, autograph=False) if spec.traceable else run
