"""The attack registry: every attack registers itself where it is defined (`@register("name")`).

`AttackSpec(name, ...)`, the CLI's `--attack` choices and the contract tests read it; a new attack is one
decorated function in its own module, listed nowhere else.
"""
from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, Callable] = {}
# Attacks that run a Python loop (eagerly, between model calls) and so cannot be wrapped in tf.function.
_EAGER: set[str] = set()


def register(name: str, attack: Callable | None = None, traceable: bool = True):
    """Makes `attack(model, x, y, **kwargs)` available to `AttackSpec(name, ...)`; a decorator without `attack`.

    Args:
        name: the registry name.
        attack: the function (omit to use `register` as a decorator).
        traceable: whether it can run inside `tf.function` (False for attacks driven by a Python loop).
    """
    def add(function: Callable) -> Callable:
        _REGISTRY[name] = function
        if not traceable:
            _EAGER.add(name)
        return function

    return add if attack is None else add(attack)


def _load_all() -> None:
    import keras_attdef.attacks  # noqa: F401  (importing the package imports, and so registers, every attack)


def registered() -> list[str]:
    """Names of every registered attack (what `AttackSpec` accepts)."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Callable:
    """The attack function registered under `name`."""
    if name not in _REGISTRY:
        _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown attack {name!r}; choose one of {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def is_traceable(name: str) -> bool:
    """Whether the registered attack can run inside `tf.function`."""
    get(name)
    return name not in _EAGER
