"""A robust loss that carries the robustness, plus an attention term that cannot be met by vanishing maps.

The reproduction found the papers' attention terms (AAD's preservation, ATAT's transfer) minimised by
all-zero Grad-CAM maps. This defence keeps what the anchors (Boopathy et al., arXiv:2006.14748; Singh et
al., arXiv:1911.13073; Sarkar et al., AAAI 2021) point to:

    L = base loss (madry: CE(f(x_adv), y); trades: CE(f(x), y) + beta KL(f(x) || f(x_adv)))
        + ramp(t) * w * D(g(x), g(x_adv))                    [+ the same on the most confusing class]

with g a signed map (no ReLU: on a class-activation head, `models.small_cam_lenet`, its mean is the
logit, which cross-entropy keeps away from zero), D scale-free (`losses.map_distance`: cosine with a floor,
spatial-softmax KL or JS, at which a vanishing map is far from every other map), and the term ramping in
over `attention_warmup` steps after the robust loss has started. `joint_attack > 0` makes the training
attack raise the attention distance too (the worst case of the whole objective, not of its first part).
The share of all-zero (ReLU'd) clean maps is logged as `empty_map_rate`.

Example:

>>> from keras_attdef import AttackSpec, RobustModel, models
>>> defense = AttentionRegularized(AttackSpec("pgd", eps=0.3, steps=3), base="madry", distance="cosine")
>>> defense.term_names, defense.metric_names
(('attention',), ('empty_map_rate',))
>>> robust = RobustModel(models.small_cam_lenet(), defense)
"""
from __future__ import annotations

import tensorflow as tf

from keras_attdef.attacks.objectives import kl_divergence
from keras_attdef.attention.gradcam import ACTIVATIONS, CAM_METHODS, empty_map_rate, grad_cam
from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense
from keras_attdef.defenses.pairing import trades_attack
from keras_attdef.losses import DISTANCES, MAP_DISTANCES, check_distance, map_distance, replica_mean
from keras_attdef.models import last_conv_layer

BASES = ("madry", "trades")


def most_confusing_class(logits, labels):
    """Per row, the class other than the label with the highest logit."""
    masked = logits - tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype) * 1e9
    return tf.argmax(masked, axis=-1, output_type=tf.int32)


@register_defense
class AttentionRegularized(Defense):
    """Madry's or TRADES' loss plus a collapse-proof attention term that ramps in.

    Args:
        attack: the training attack's budget (`AttackSpec("pgd", eps=..., step_size=..., steps=...)`); with
            `base="trades"` its KL form is run, as TRADES does.
        weights: `{"attention": w}` and, with TRADES, `{"kl": beta}`.
        warmup_steps: eps ramp (see `Defense`).
        base: `"madry"` or `"trades"`: the loss that carries the robustness.
        layer: the map's conv layer (default the topmost).
        method: `"grad_cam"`, `"grad_x_activation"` or `"integrated_gradients"` (see `attention.grad_cam`).
        activation: `"none"` (signed maps), `"softplus"` or `"relu"` (Grad-CAM's; a vanishing map is then
            reachable, kept only for comparison).
        distance: a `losses.MAP_DISTANCES` kind (`"cosine"`, `"softmax_kl"`, `"softmax_js"`) or a plain one.
        contrastive: also compare the maps of the most confusing class (the adversarial input's highest
            wrong logit), as Boopathy et al. compare the wrong classes' maps.
        attention_warmup: optimizer steps over which the attention weight ramps from 0 to `w`.
        joint_attack: weight of the attention distance inside the training attack's objective (0: off).
    """

    name = "attention_reg"
    default_weights = {"kl": 6.0, "attention": 1.0}
    metric_names = ("empty_map_rate",)

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0, base: str = "trades",
                 layer: str | None = None, method: str = "grad_cam", activation: str = "none",
                 distance: str = "cosine", contrastive: bool = False, attention_warmup: int = 0,
                 joint_attack: float = 0.0):
        if base not in BASES:
            raise ValueError(f"Unknown base loss {base!r}; choose one of {BASES}.")
        self.base = base
        self.term_names = ("kl", "attention") if base == "trades" else ("attention",)
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("AttentionRegularized needs an attack (its budget, step and steps).")
        self.weights = {k: v for k, v in self.weights.items() if k in self.term_names}
        if method not in CAM_METHODS or activation not in ACTIVATIONS:
            raise ValueError(f"method must be one of {CAM_METHODS} and activation one of {ACTIVATIONS}; got "
                             f"{method!r}, {activation!r}.")
        self.layer, self.method, self.activation = layer, method, activation
        self.distance = check_distance(distance, DISTANCES + MAP_DISTANCES)
        self.contrastive = bool(contrastive)
        if attention_warmup < 0 or joint_attack < 0:
            raise ValueError(f"attention_warmup and joint_attack must be >= 0; got {attention_warmup}, {joint_attack}.")
        self.attention_warmup, self.joint_attack = int(attention_warmup), float(joint_attack)

    def maps(self, model, x, target, training: bool = False, return_logits: bool = False):
        """This defence's attention maps of `x` for classes `target` (also what an adaptive attack should use)."""
        return grad_cam(model, x, self.layer or last_conv_layer(model), target=target, training=training,
                        return_logits=return_logits, method=self.method, activation=self.activation)

    def _attention_objective(self, model, x, y):
        clean_maps = tf.stop_gradient(self.maps(model, x, y))
        return lambda x_adv: self.joint_attack * map_distance(clean_maps, self.maps(model, x_adv, y), self.distance)

    def perturb(self, model, x, y, scale=None):
        extra = self._attention_objective(model, x, y) if self.joint_attack else None
        if self.base == "trades":
            return trades_attack(model, x, self.attack, scale, extra_objective=extra)
        return self.attack(model, x, y, scale=scale, **({"extra_objective": extra} if extra else {}))

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        batch = tf.shape(x)[0]
        maps, logits = self.maps(model, tf.concat([x, adv], 0), tf.concat([y, y], 0), training=True,
                                 return_logits=True)
        clean_logits, adv_logits = logits[:batch], logits[batch:]
        attention = replica_mean(map_distance(maps[:batch], maps[batch:], self.distance))
        if self.contrastive:
            rival = tf.stop_gradient(most_confusing_class(adv_logits, y))
            rival_maps = self.maps(model, tf.concat([x, adv], 0), tf.concat([rival, rival], 0), training=True)
            attention = attention + replica_mean(map_distance(rival_maps[:batch], rival_maps[batch:], self.distance))
        terms = {"attention": attention}
        metrics = {"empty_map_rate": empty_map_rate(maps[:batch])}
        if self.base == "trades":
            terms["kl"] = replica_mean(kl_divergence(clean_logits, adv_logits))
            return DefenseOutput(clean_logits, y, terms, clean_logits=clean_logits, adv_logits=adv_logits,
                                 metrics=metrics)
        return DefenseOutput(adv_logits, y, terms, clean_logits=clean_logits, adv_logits=adv_logits, metrics=metrics)

    def term_scales(self, iterations) -> dict:
        if not self.attention_warmup:
            return {}
        return {"attention": tf.minimum(1.0, (tf.cast(iterations, tf.float32) + 1.0) / float(self.attention_warmup))}

    def get_config(self) -> dict:
        return {**super().get_config(), "base": self.base, "layer": self.layer, "method": self.method,
                "activation": self.activation, "distance": self.distance, "contrastive": self.contrastive,
                "attention_warmup": self.attention_warmup, "joint_attack": self.joint_attack}
