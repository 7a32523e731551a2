"""Presets: the papers' defaults, one function per defence, and `get(name)` for the CLI.

The defaults are the MNIST settings (eps 0.3); pass `eps=8/255, step_size=2/255, steps=7` for CIFAR-10.

Example:

>>> from keras_attdef import defenses
>>> d = defenses.madry(eps=0.3, step_size=0.1, steps=7, warmup_steps=500)
>>> d.attack
AttackSpec('pgd', eps=0.3, step_size=0.1, steps=7, random_start=True)
"""
from __future__ import annotations

from keras_attdef.attacks._checks import check_eps
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.defenses.adversarial_training import AdversarialTraining, PlainTraining
from keras_attdef.defenses.base import Defense
from keras_attdef.defenses.pairing import LogitPairing, Trades


def _pgd(eps, step_size, steps) -> AttackSpec:
    check_eps(eps)
    return AttackSpec("pgd", eps=eps, step_size=step_size, steps=steps, random_start=True)


def plain() -> Defense:
    """Standard training on clean inputs (for comparison)."""
    return PlainTraining()


def madry(eps: float = 0.3, step_size: float = 0.01, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """PGD adversarial training (Madry et al., 2018); defaults are the paper's MNIST setting.

    Args:
        eps: Linf budget.
        step_size: PGD step.
        steps: PGD iterations (7 is the common cheap choice).
        warmup_steps: optimizer steps over which the budget ramps up to eps.
    """
    return AdversarialTraining(_pgd(eps, step_size, steps), warmup_steps=warmup_steps)


def fast(eps: float = 0.3, step_size: float | None = None, warmup_steps: int = 0) -> Defense:
    """"Fast is better than free" (Wong, Rice and Kolter, 2020): FGSM from a uniform random start.

    Args:
        eps: Linf budget.
        step_size: the FGSM step, default 1.25 * eps as in the paper.
        warmup_steps: optimizer steps over which the budget ramps up to eps.
    """
    check_eps(eps)
    step_size = 1.25 * eps if step_size is None else step_size
    attack = AttackSpec("pgd", eps=eps, step_size=step_size, steps=1, random_start=True)
    return AdversarialTraining(attack, warmup_steps=warmup_steps)


def alp(weight: float = 0.5, eps: float = 0.3, step_size: float = 0.01, steps: int = 40,
        distance: str = "mse", warmup_steps: int = 0) -> Defense:
    """Adversarial logit pairing (Kannan et al., 2018) on PGD examples; logs `pair_loss`."""
    return LogitPairing(_pgd(eps, step_size, steps), {"pair": weight}, warmup_steps, distance)


def trades(beta: float = 6.0, eps: float = 0.3, step_size: float = 0.01, steps: int = 40,
           warmup_steps: int = 0) -> Defense:
    """TRADES (Zhang et al., 2019) with its KL attack; logs `kl_loss`."""
    check_eps(eps)
    attack = AttackSpec("pgd", eps=eps, step_size=step_size, steps=steps)
    return Trades(attack, {"kl": beta}, warmup_steps)


def aad(attack: str = "step_ll", rounds: int = 2, alpha: float = 2.0, beta: float = 1.0, gamma: float = 2.0,
        layer: str | None = None, eps: float | None = None, step_size: float | None = None, steps: int = 7,
        warmup_steps: int = 0, kappa="mean") -> Defense:
    """AAD (attention rectification + preservation, two-round selection); logs `rect_loss`, `pres_loss`.

    Defaults are the MNIST ratio alpha:beta:gamma = 2:1:2; the paper's CIFAR-10 ratio is 8:4:1.

    Args:
        attack: `"step_ll"` (each round one StepLL step of eps, the paper's eps 0.15: 0.3 after two rounds)
            or `"pgd"` (AAD-PGD: each round PGD-`steps` in the ball of radius eps, default 0.3, around x).
        rounds: adversarial rounds.
        alpha: weight of the classification loss.
        beta: weight of the rectification loss.
        gamma: weight of the preservation loss.
        layer: Grad-CAM layer (default the topmost conv layer).
        eps: per-round budget (`step_ll`) or total budget (`pgd`).
        step_size: PGD step (default 2.5 eps / steps).
        steps: PGD steps per round.
        warmup_steps: budget ramp.
        kappa: attention threshold.
    """
    from keras_attdef.defenses.aad import AttentionRectificationPreservation

    if attack == "step_ll":
        eps = 0.15 if eps is None else eps
        check_eps(eps)
        spec = AttackSpec("step_ll", eps=eps)
    elif attack == "pgd":
        eps = 0.3 if eps is None else eps
        spec = _pgd(eps, step_size or 2.5 * eps / steps, steps)
    else:
        raise ValueError(f"AAD attack must be 'step_ll' or 'pgd', got {attack!r}.")
    return AttentionRectificationPreservation(spec, {"rect": beta, "pres": gamma}, warmup_steps, rounds,
                                              task_weight=alpha, layer=layer, kappa=kappa)


def at_alp(layers=None, attention_weight: float = 1.0, pair_weight: float = 0.5, eps: float = 0.3,
           step_size: float = 0.01, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """AT+ALP: PGD training with activation-attention and logit pairing; logs `attention_loss`, `pair_loss`.

    Args:
        layers: layers to pair (default every conv layer).
    """
    from keras_attdef.defenses.attention_pairing import ActivationAttentionPairing

    return ActivationAttentionPairing(_pgd(eps, step_size, steps), {"attention": attention_weight,
                                                                    "pair": pair_weight}, warmup_steps, layers)


def atat(teacher, layer: str | None = None, lambda1: float = 1.0, lambda2: float = 0.5, eps: float = 0.3,
         step_size: float = 0.01, steps: int = 40, warmup_steps: int = 0) -> Defense:
    """ATAT: PGD training with Grad-CAM attention transferred from a frozen `teacher`.

    Logs `transfer_loss` and `pair_loss`. The paper uses PGD 8/255, step 2/255, 7 steps on CIFAR-10.

    Args:
        teacher: a plainly trained keras.Model.
        layer: Grad-CAM layer (default the topmost conv layer).
        lambda1: weight of the attention transfer.
        lambda2: weight of the logit pairing.
    """
    from keras_attdef.defenses.attention_pairing import AttentionTransfer

    return AttentionTransfer(_pgd(eps, step_size, steps), teacher, {"transfer": lambda1, "pair": lambda2},
                             warmup_steps, layer)


def certified(radius=0.1, weight: float = 1.0, warmup_steps: int = 0, power_iterations: int = 2) -> Defense:
    """Certified training of a dense-relu-dense net (Raghunathan et al., 2018); logs `certified_loss`.

    Args:
        radius: input box radius: Linf eps, or per input (see `defenses.flow_training_radius`).
        weight: weight of the cross-entropy on worst-case (certificate-bounded) logits.
        warmup_steps: optimizer steps over which the radius ramps up.
        power_iterations: power-iteration steps per training step.
    """
    from keras_attdef.defenses.certified_training import CertifiedTraining

    return CertifiedTraining(radius, {"certified": weight}, warmup_steps, power_iterations)


PRESETS = {"plain": plain, "madry": madry, "fast": fast, "alp": alp, "trades": trades, "aad": aad,
           "at_alp": at_alp, "atat": atat,
           "certified": certified}


def get(name, **kwargs) -> Defense:
    """A defence from a preset name (with keyword overrides), a `Defense`, or a serialised dict.

    Raises:
        ValueError: unknown preset name.
    """
    if isinstance(name, Defense):
        return name
    if isinstance(name, dict):
        from keras_attdef.defenses.base import deserialize

        return deserialize(name)
    if name not in PRESETS:
        raise ValueError(f"Unknown defence preset {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name](**kwargs)
