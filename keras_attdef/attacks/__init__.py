"""Adversarial attacks as plain TensorFlow functions of (model, x, y, ...)."""
from keras_attdef.attacks.engine import maximize, project
from keras_attdef.attacks.gradient import fgsm, ifgsm, iter_ll, pgd, r_step_ll, step_ll
from keras_attdef.attacks.objectives import cross_entropy, kl_divergence, margin
from keras_attdef.attacks.spec import AttackSpec, as_spec, get, register
from keras_attdef.attacks.attention_augmented import a3_attack, attention_augmented  # noqa: E402  (after spec)

__all__ = [
    "AttackSpec", "as_spec", "attention_augmented", "cross_entropy", "fgsm", "get", "ifgsm", "iter_ll", "kl_divergence", "margin",
    "maximize", "pgd", "project", "r_step_ll", "register", "step_ll",
]
