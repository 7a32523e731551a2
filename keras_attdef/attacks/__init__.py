"""Adversarial attacks as plain TensorFlow functions of (model, x, y, ...)."""
from keras_attdef.attacks.auto_pgd import apgd, apgd_ce, apgd_dlr, apgd_t
from keras_attdef.attacks.carlini_wagner import carlini_wagner_l2
from keras_attdef.attacks.engine import maximize, project
from keras_attdef.attacks.fab import fab_t
from keras_attdef.attacks.gradient import default_step_size, fgsm, ifgsm, iter_ll, pgd, r_step_ll, step_ll
from keras_attdef.attacks.objectives import cross_entropy, kl_divergence, margin
from keras_attdef.attacks.spec import AttackSpec, as_spec, compile_attack, get, register, registered
from keras_attdef.attacks.jsma import jsma
from keras_attdef.attacks.result import AttackResult
from keras_attdef.attacks.square_attack import square
from keras_attdef.attacks.attention_augmented import a3_attack, attention_augmented  # noqa: E402  (after spec)

__all__ = [
    "AttackResult", "AttackSpec", "a3_attack", "apgd", "apgd_ce", "apgd_dlr", "apgd_t", "as_spec", "attention_augmented",
    "carlini_wagner_l2", "compile_attack", "cross_entropy", "default_step_size", "fab_t", "fgsm", "get", "ifgsm",
    "iter_ll", "jsma", "kl_divergence", "margin", "maximize", "pgd", "project", "r_step_ll", "register",
    "registered", "square", "step_ll",
]
