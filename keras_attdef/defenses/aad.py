"""AAD: attention rectification and preservation with two-round adversarial sample selection.

From "Attention, Please! Adversarial Defense via Attention Rectification and Preservation" (Wu et
al., arXiv:1811.09831). For a clean batch x and adversarial rounds x_1 .. x_R (each round
attacks the previous one, projected to the total budget around x):

    L_c = compiled loss on [x, x_1, .., x_R]
    L_r = -sum_{z in {x, x_1, .., x_R}} D_r(f(z), f(z_m)),  z_m = z * (1 - Att(z))      (eq. 7, sec. 3.3)
    L_p = sum_i D_p(g(x), g(x_i))                                                   (eq. 8, sec. 3.3)
    L   = alpha L_c + beta L_r + gamma L_p                                          (eq. 9)

g is Grad-CAM at `layer` (max-normalised per map, so L_p cannot shrink by scaling the maps), f the
softmax prediction vector (bounded, so -L_r cannot run off to -inf), Att(z) = sign(ReLU(g(z) - kappa))
with kappa = mean(g(z)), D_r = L2 and D_p = L1 by default (the paper's choices).

The mask is hard: `sign` has zero gradient, so L_r trains the network only through the forward passes
f(z) and f(z_m), never through where the mask falls.
"""
from __future__ import annotations

import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.attention.areas import attention_area, hard_mask
from keras_attdef.attention.gradcam import CAM_METHODS, empty_map_rate, grad_cam
from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense
from keras_attdef.losses import check_distance, distance, replica_mean
from keras_attdef.models import last_conv_layer


@register_defense
class AttentionRectificationPreservation(Defense):
    """AAD. `attack` is one round; `rounds` rounds are chained inside `total_eps` around x.

    Args:
        attack: the per-round attack (`step_ll` with eps 0.15 in the paper, or `pgd` for AAD-PGD).
        weights: `{"rect": beta, "pres": gamma}`; alpha, the task weight, is `task_weight`.
        warmup_steps: budget ramp (see `Defense`).
        rounds: adversarial rounds (the paper selects 2).
        total_eps: Linf budget of the last round around x (default: the per-round eps times rounds for
            single-step attacks, the per-round eps for iterative ones).
        task_weight: alpha.
        layer: Grad-CAM layer, default the topmost conv layer.
        kappa: attention threshold, `"mean"` or a number.
        rect_distance: D_r (`"l2"`).
        pres_distance: D_p (`"l1"`).
        cam_method: the attention map, `"grad_cam"` (the paper's) or `"grad_x_activation"` (see
            `attention.grad_cam`: Grad-CAM maps of an AAD-trained LeNet collapse to zero, which satisfies
            both terms vacuously).
    """

    name = "aad"
    term_names = ("rect", "pres")
    default_weights = {"rect": 1.0, "pres": 2.0}
    metric_names = ("empty_map_rate",)

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0, rounds: int = 2,
                 total_eps: float | None = None, task_weight: float = 2.0, layer: str | None = None,
                 kappa="mean", rect_distance: str = "l2", pres_distance: str = "l1", cam_method: str = "grad_cam"):
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("AAD needs a per-round attack.")
        if int(rounds) < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}.")
        self.rounds = int(rounds)
        single_step = self.attack.name in ("fgsm", "step_ll", "r_step_ll")
        self.total_eps = float(total_eps if total_eps is not None
                               else self.attack.eps * (self.rounds if single_step else 1))
        self.task_weight = float(task_weight)
        self.layer = layer
        self.kappa = kappa
        self.rect_distance = check_distance(rect_distance)
        self.pres_distance = check_distance(pres_distance)
        if cam_method not in CAM_METHODS:  # at construction, not at the first training step
            raise ValueError(f"Unknown cam_method {cam_method!r}; choose one of {CAM_METHODS}.")
        self.cam_method = cam_method

    def _layer(self, model):
        return self.layer or last_conv_layer(model)

    def perturb(self, model, x, y, scale=None):
        total = self.total_eps if scale is None else self.total_eps * scale
        low, high = self.attack.kwargs.get("clip_min", 0.0), self.attack.kwargs.get("clip_max", 1.0)
        rounds, current = [], x
        for _ in range(self.rounds):
            current = self.attack(model, current, y, scale=scale)
            current = tf.stop_gradient(engine.project(current, x, total, "linf", low, high))
            rounds.append(current)
        return tuple(rounds)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        layer = self._layer(model)
        inputs = [x, *adv]
        batch = tf.shape(x)[0]
        # One Grad-CAM pass over the stacked batch gives every g(z) and f(z).
        maps, logits = grad_cam(model, tf.concat(inputs, 0), layer, target=tf.concat([y] * len(inputs), 0),
                                normalize="max", training=True, return_logits=True, method=self.cam_method)
        masked = hard_mask(tf.concat(inputs, 0), attention_area(maps, self.kappa))
        masked_logits = model(masked, training=True)
        rect = -replica_mean(distance(tf.nn.softmax(logits), tf.nn.softmax(masked_logits), self.rect_distance))
        rect = rect * len(inputs)  # eq. 7 sums over x and each round; the mean above is over all of them
        clean_maps = maps[:batch]
        pres = tf.add_n([
            replica_mean(distance(clean_maps, maps[(i + 1) * batch:(i + 2) * batch], self.pres_distance))
            for i in range(len(adv))
        ])
        return DefenseOutput.stacked(logits, y, len(inputs), {"rect": rect, "pres": pres},
                                     clean_logits=logits[:batch], adv_logits=logits[-batch:],
                                     task_weight=self.task_weight, metrics={"empty_map_rate": empty_map_rate(maps)})

    def get_config(self) -> dict:
        return {**super().get_config(), "rounds": self.rounds, "total_eps": self.total_eps,
                "task_weight": self.task_weight, "layer": self.layer, "kappa": self.kappa,
                "rect_distance": self.rect_distance, "pres_distance": self.pres_distance, "cam_method": self.cam_method}
