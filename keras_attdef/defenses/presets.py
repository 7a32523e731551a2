"""Presets: the papers' defaults, one builder per defence, and the one registry everything reads.

The registry (`PRESETS`, name -> `Preset`) is what the CLI, the scripts, the benchmarks and the tests
iterate over: a new preset is one decorated builder here. Each `Preset` says which of the common
options (`eps`, `steps`, `step_size`, `warmup_steps`, `teacher`) it takes, so that `keras-attdef train
--defense NAME --eps ...` passes every flag that applies and refuses the ones that do not.

The builders' defaults are the MNIST settings (eps 0.3); pass `eps=8/255, step_size=2/255, steps=7` for
CIFAR-10.

Example:

>>> from keras_attdef import defenses
>>> d = defenses.madry(eps=0.3, step_size=0.1, steps=7, warmup_steps=500)
>>> d.attack
AttackSpec('pgd', eps=0.3, step_size=0.1, steps=7, random_start=True)
>>> defenses.PRESETS["fast"].options
('eps', 'step_size', 'warmup_steps')
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

from keras_attdef.inputs import check_eps
from keras_attdef.attacks.gradient import default_step_size
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.defenses.aad import AttentionRectificationPreservation
from keras_attdef.defenses.adversarial_training import AdversarialTraining, PlainTraining
from keras_attdef.defenses.attention_pairing import ActivationAttentionPairing, AttentionTransfer
from keras_attdef.defenses.attention_regularized import AttentionRegularized
from keras_attdef.defenses.base import Defense, deserialize
from keras_attdef.defenses.certified_training import CertifiedTraining
from keras_attdef.defenses.pairing import LogitPairing, Trades

# The options a preset may take from the command line, by builder argument name.
OPTIONS = ("eps", "steps", "step_size", "warmup_steps", "teacher")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named defence builder and the common options it takes.

    Attributes:
        name: registry name (`keras-attdef train --defense NAME`).
        builder: returns the `Defense`; its keyword arguments include every entry of `options`.
        options: the common options (of `OPTIONS`) the builder takes.
        summary: one line for `--help` and tables.
        model: the model family the defence needs (`"two_layer_dense"` for certified training), or None
            for any classifier.
    """

    name: str
    builder: Callable[..., Defense]
    options: tuple
    summary: str
    model: str | None = None

    def build(self, **kwargs) -> Defense:
        """The defence from builder arguments (every argument of the builder, not only `options`)."""
        return self.builder(**kwargs)

    def from_options(self, **options) -> Defense:
        """The defence from common options, as the CLI and scripts pass them to every preset alike.

        Options this preset does not take, and None values, are dropped (every PGD builder's step then
        defaults to `2.5 * eps / steps`, `attacks.default_step_size`).
        """
        options = {k: v for k, v in options.items() if v is not None and k in self.options}
        return self.builder(**options)


PRESETS: dict[str, Preset] = {}


def register_preset(name: str, options=(), model: str | None = None):
    """Decorator: registers a builder as preset `name`; its docstring's first line is the summary."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"Unknown preset options {sorted(unknown)}; choose from {OPTIONS}.")

    def decorate(builder):
        summary = (builder.__doc__ or name).strip().splitlines()[0]
        PRESETS[name] = Preset(name, builder, tuple(options), summary, model)
        return builder

    return decorate


_PGD_OPTIONS = ("eps", "steps", "step_size", "warmup_steps")


def _pgd(eps, step_size, steps) -> AttackSpec:
    check_eps(eps)
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    return AttackSpec("pgd", eps=eps, step_size=step_size, steps=steps, random_start=True)


@register_preset("plain")
def plain() -> Defense:
    """Standard training on clean inputs (the baseline every table needs)."""
    return PlainTraining()


@register_preset("madry", _PGD_OPTIONS)
def madry(eps: float = 0.3, step_size: float | None = None, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """PGD adversarial training (Madry et al., 2018, arXiv:1706.06083).

    Defaults are the paper's MNIST budget and step count (eps 0.3, 40 steps); the step defaults to
    `2.5 * eps / steps` whatever `steps` is, so lowering `steps` keeps an attack that can cross the ball.
    The paper's fixed step of 0.01 is `step_size=0.01` (the reproduction protocol passes it).

    Args:
        eps: Linf budget.
        step_size: PGD step (None: `2.5 * eps / steps`).
        steps: PGD iterations (7 is the common cheap choice).
        warmup_steps: optimizer steps over which the budget ramps up to eps.
    """
    return AdversarialTraining(_pgd(eps, step_size, steps), warmup_steps=warmup_steps)


@register_preset("fast", ("eps", "step_size", "warmup_steps"))
def fast(eps: float = 0.3, step_size: float | None = None, warmup_steps: int = 0) -> Defense:
    """FGSM from a random start ("Fast is better than free", Wong, Rice and Kolter, 2020, arXiv:2001.03994).

    Args:
        eps: Linf budget.
        step_size: the FGSM step, default 1.25 * eps as in the paper.
        warmup_steps: optimizer steps over which the budget ramps up to eps.
    """
    check_eps(eps)
    step_size = 1.25 * eps if step_size is None else step_size
    attack = AttackSpec("pgd", eps=eps, step_size=step_size, steps=1, random_start=True)
    return AdversarialTraining(attack, warmup_steps=warmup_steps)


@register_preset("alp", _PGD_OPTIONS)
def alp(weight: float = 0.5, eps: float = 0.3, step_size: float | None = None, steps: int = 40,
        distance: str = "mse", warmup_steps: int = 0) -> Defense:
    """Adversarial logit pairing on PGD examples (Kannan et al., 2018, arXiv:1803.06373); logs `pair_loss`."""
    return LogitPairing(_pgd(eps, step_size, steps), {"pair": weight}, warmup_steps, distance)


# Fewer KL-attack steps than this overfitted catastrophically in a measured run (see `trades`).
TRADES_MIN_STEPS = 7


@register_preset("trades", _PGD_OPTIONS)
def trades(beta: float = 6.0, eps: float = 0.3, step_size: float | None = None, steps: int = 40,
           warmup_steps: int = 0) -> Defense:
    """TRADES with its KL attack (Zhang et al., 2019, arXiv:1901.08573); logs `kl_loss`.

    Warns below `TRADES_MIN_STEPS` attack steps: the KL attack starts next to x, with no random start.
    """
    check_eps(eps)
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    if steps < TRADES_MIN_STEPS:
        warnings.warn(f"TRADES with a {steps}-step KL attack: it starts next to x (no random start), and with few "
                      "large steps it behaves like FGSM without one. PGD-3 of step 0.25 overfitted catastrophically "
                      "on MNIST (its own attack 99.5%, PGD-20 0.0%; benchmarks/RESULTS.md) where PGD-7 did not. Use "
                      f"steps >= {TRADES_MIN_STEPS}, and check the model with keras_attdef.evaluation.evaluate.",
                      stacklevel=2)
    attack = AttackSpec("pgd", eps=eps, step_size=step_size, steps=steps)
    return Trades(attack, {"kl": beta}, warmup_steps)


@register_preset("aad", ("eps", "warmup_steps"))
def aad(attack: str = "step_ll", rounds: int = 2, alpha: float = 2.0, beta: float = 1.0, gamma: float = 2.0,
        layer: str | None = None, eps: float = 0.3, step_size: float | None = None, steps: int = 7,
        warmup_steps: int = 0, kappa="mean", cam_method: str = "grad_cam") -> Defense:
    """AAD: attention rectification + preservation, two-round selection (arXiv:1811.09831).

    Logs `rect_loss` and `pres_loss`. Defaults are the MNIST ratio alpha:beta:gamma = 2:1:2 (the paper's
    CIFAR-10 ratio is 8:4:1) with StepLL rounds of eps / rounds (the paper's 0.15 for eps 0.3).

    Args:
        attack: `"step_ll"` (each round one StepLL step of eps / rounds) or `"pgd"` (AAD-PGD: each round
            PGD-`steps` in the ball of radius eps around x).
        rounds: adversarial rounds.
        alpha: weight of the classification loss.
        beta: weight of the rectification loss.
        gamma: weight of the preservation loss.
        layer: Grad-CAM layer (default the topmost conv layer).
        eps: Linf budget of the last round around x.
        step_size: PGD step (default `2.5 * eps / steps`).
        steps: PGD steps per round.
        warmup_steps: budget ramp.
        kappa: attention threshold.
        cam_method: `"grad_cam"` (the paper's) or `"grad_x_activation"` (see `attention.grad_cam`).
    """
    check_eps(eps)
    if attack == "step_ll":
        spec = AttackSpec("step_ll", eps=eps / int(rounds))
    elif attack == "pgd":
        spec = _pgd(eps, step_size, steps)
    else:
        raise ValueError(f"AAD attack must be 'step_ll' or 'pgd', got {attack!r}.")
    return AttentionRectificationPreservation(spec, {"rect": beta, "pres": gamma}, warmup_steps, rounds,
                                              total_eps=eps, task_weight=alpha, layer=layer, kappa=kappa,
                                              cam_method=cam_method)


@register_preset("aad_pgd", _PGD_OPTIONS)
def aad_pgd(eps: float = 0.3, step_size: float | None = None, steps: int = 7, warmup_steps: int = 0,
            **kwargs) -> Defense:
    """AAD with PGD rounds (the extended paper's AAD-PGD); `aad(attack="pgd", ...)`."""
    return aad("pgd", eps=eps, step_size=step_size, steps=steps, warmup_steps=warmup_steps, **kwargs)


@register_preset("at_alp", _PGD_OPTIONS)
def at_alp(layers=None, attention_weight: float = 1.0, pair_weight: float = 0.5, eps: float = 0.3,
           step_size: float | None = None, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """AT+ALP: PGD training with activation-attention and logit pairing (arXiv:1908.11435).

    Logs `attention_loss` and `pair_loss`.

    Args:
        layers: layers to pair (default every conv layer).
    """
    return ActivationAttentionPairing(_pgd(eps, step_size, steps), {"attention": attention_weight,
                                                                    "pair": pair_weight}, warmup_steps, layers)


@register_preset("atat", _PGD_OPTIONS + ("teacher",))
def atat(teacher, layer: str | None = None, lambda1: float = 1.0, lambda2: float = 0.5, eps: float = 0.3,
         step_size: float | None = None, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """ATAT: PGD training with Grad-CAM attention transferred from a frozen teacher (Li et al., 2021).

    Logs `transfer_loss` and `pair_loss`. The paper uses PGD 8/255, step 2/255, 7 steps on CIFAR-10, and
    starts the student from the teacher's weights: call `student.set_weights(teacher.get_weights())` before
    wrapping it (from random weights, LeNet on MNIST at eps 0.3 collapsed to a constant output).

    Args:
        teacher: a plainly trained keras.Model.
        layer: Grad-CAM layer (default the topmost conv layer).
        lambda1: weight of the attention transfer.
        lambda2: weight of the logit pairing.
    """
    return AttentionTransfer(_pgd(eps, step_size, steps), teacher, {"transfer": lambda1, "pair": lambda2},
                             warmup_steps, layer)


@register_preset("attention_trades", _PGD_OPTIONS)
def attention_trades(weight: float = 1.0, beta: float = 6.0, eps: float = 0.3, step_size: float | None = None,
                     steps: int = 10, warmup_steps: int = 0, base: str = "trades", distance: str = "cosine",
                     activation: str = "none", method: str = "grad_cam", contrastive: bool = False,
                     attention_warmup: int | None = None, joint_attack: float = 0.0, layer: str | None = None) -> Defense:
    """Experimental: TRADES (or madry) plus a collapse-proof attention term; logs `attention_loss`, `empty_map_rate`.

    Signed Grad-CAM maps compared by a floored cosine (`defenses.AttentionRegularized`); best on a
    class-activation head (`models.small_cam_lenet`). Not shown to beat TRADES yet: see `docs/results.md`.

    Args:
        weight: weight of the attention term.
        beta: TRADES' KL weight (ignored with `base="madry"`).
        attention_warmup: steps over which the attention term ramps in (None: `warmup_steps`).
    """
    check_eps(eps)
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    random_start = base == "madry"  # TRADES' KL attack makes its own start
    attack = AttackSpec("pgd", eps=eps, step_size=step_size, steps=steps, **({"random_start": True} if random_start else {}))
    weights = {"attention": weight, **({"kl": beta} if base == "trades" else {})}
    return AttentionRegularized(attack, weights, warmup_steps, base, layer, method, activation, distance, contrastive,
                                warmup_steps if attention_warmup is None else attention_warmup, joint_attack)


@register_preset("certified", ("eps", "warmup_steps"), model="two_layer_dense")
def certified(radius=0.1, weight: float = 1.0, warmup_steps: int = 0, power_iterations: int = 2,
              eps: float | None = None) -> Defense:
    """Certified training of a dense-relu-dense net (Raghunathan et al., 2018); logs `certified_loss`.

    Args:
        radius: input box radius: Linf eps, or per input (see `defenses.flow_training_radius`).
        weight: weight of the cross-entropy on worst-case (certificate-bounded) logits.
        warmup_steps: optimizer steps over which the radius ramps up.
        power_iterations: power-iteration steps per training step.
        eps: the Linf radius under its common name (overrides `radius`).
    """
    return CertifiedTraining(radius if eps is None else eps, {"certified": weight}, warmup_steps, power_iterations)


def get(name, **kwargs) -> Defense:
    """A defence from a preset name (with keyword overrides), a `Defense`, or a serialised dict.

    Raises:
        ValueError: unknown preset name.
    """
    if isinstance(name, Defense):
        return name
    if isinstance(name, dict):
        return deserialize(name)
    if name not in PRESETS:
        raise ValueError(f"Unknown defence preset {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name].build(**kwargs)
