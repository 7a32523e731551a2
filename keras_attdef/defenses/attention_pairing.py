"""Attention-pairing defences: ATAT (attention transfer from a teacher) and AT+ALP.

ATAT ("Adversarial Robustness via Attention Transfer", Li et al., Pattern Recognition Letters 146, 2021), eq. 5-7:

    L = CE on [x, x_adv] + lambda1 * (D(v(g_T(x)), v(g_S(x_adv))) + D(v(g_T(x)), v(g_S(x))))
                         + lambda2 * ||z_S(x) - z_S(x_adv)||_2

g_T is the frozen teacher's Grad-CAM on clean inputs, g_S the student's, both at the topmost conv layer,
max-normalised; D is the L2 distance (p = 2).

AT+ALP ("Improving Adversarial Robustness via Attention and Adversarial Logit Pairing", Goodman et al.,
arXiv:1908.11435):

    L = CE on [x, x_adv] + w_at * sum_layers ||Q(x) - Q(x_adv)||_2 + w_pair * D(z(x), z(x_adv))

with Q the L2-normalised activation attention (mean over channels of |A|^2) of each chosen layer.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from keras_attdef.attention.areas import activation_attention
from keras_attdef.attention.gradcam import empty_map_rate, grad_cam
from keras_attdef.attention.split import split_model
from keras_attdef.defenses.base import Defense, DefenseOutput, register_defense
from keras_attdef.losses import check_distance, distance, replica_mean
from keras_attdef.models import get_layer, last_conv_layer


@register_defense
class AttentionTransfer(Defense):
    """ATAT. Logs `transfer_loss` and `pair_loss`.

    Args:
        attack: the attack making x_adv (PGD in the paper).
        teacher: a plainly trained model (frozen here; its weights are saved with the RobustModel).
        weights: `{"transfer": lambda1, "pair": lambda2}`.
        warmup_steps: budget ramp (see `Defense`).
        layer: student Grad-CAM layer (default its topmost conv layer).
        teacher_layer: teacher Grad-CAM layer (default `layer` if the teacher has it, else its topmost).
        distance: D for the transfer term (`"l2"`, p = 2 in the paper).
    """

    name = "atat"
    term_names = ("transfer", "pair")
    default_weights = {"transfer": 1.0, "pair": 0.5}
    metric_names = ("empty_map_rate",)

    def __init__(self, attack=None, teacher: keras.Model | None = None, weights=None, warmup_steps: int = 0,
                 layer: str | None = None, teacher_layer: str | None = None, distance: str = "l2"):
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("ATAT needs an attack.")
        if isinstance(teacher, dict):
            teacher = keras.saving.deserialize_keras_object(teacher)
        if not isinstance(teacher, keras.Model):
            raise ValueError("ATAT needs a teacher: a plainly trained keras.Model with the same inputs.")
        teacher.trainable = False
        self.teacher = teacher
        self.layer = layer
        self.teacher_layer = teacher_layer
        self.distance = check_distance(distance)
        if teacher_layer is not None:
            get_layer(teacher, teacher_layer)

    @property
    def auxiliary_models(self) -> list:
        return [self.teacher]

    def _teacher_layer(self, model):
        if self.teacher_layer:
            return self.teacher_layer
        student_layer = self.layer or last_conv_layer(model)
        names = [layer.name for layer in self.teacher.layers]
        return student_layer if student_layer in names else last_conv_layer(self.teacher)

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        teacher_maps = tf.stop_gradient(grad_cam(self.teacher, x, self._teacher_layer(model), target=y,
                                                 normalize="max"))
        batch = tf.shape(x)[0]
        maps, logits = grad_cam(model, tf.concat([x, adv], 0), self.layer or last_conv_layer(model),
                                target=tf.concat([y, y], 0), normalize="max", training=True, return_logits=True)
        clean_maps, adv_maps = maps[:batch], maps[batch:]
        clean_logits, adv_logits = logits[:batch], logits[batch:]
        transfer = (replica_mean(distance(teacher_maps, adv_maps, self.distance))
                    + replica_mean(distance(teacher_maps, clean_maps, self.distance)))
        pair = replica_mean(distance(clean_logits, adv_logits, "l2"))
        return DefenseOutput.stacked(logits, y, 2, {"transfer": transfer, "pair": pair}, clean_logits=clean_logits,
                                     adv_logits=adv_logits, metrics={"empty_map_rate": empty_map_rate(maps)})

    def get_config(self) -> dict:
        return {**super().get_config(), "teacher": keras.saving.serialize_keras_object(self.teacher),
                "layer": self.layer, "teacher_layer": self.teacher_layer, "distance": self.distance}


@register_defense
class ActivationAttentionPairing(Defense):
    """AT+ALP. Logs `attention_loss` and `pair_loss`.

    Args:
        attack: the attack making x_adv (PGD).
        weights: `{"attention": w_at, "pair": w_pair}`.
        warmup_steps: budget ramp (see `Defense`).
        layers: layers whose activation attention is paired (default: every conv layer).
        p: exponent of the activation attention (2).
        distance: distance between logits for the pairing term (`"mse"`, as ALP).
    """

    name = "at_alp"
    term_names = ("attention", "pair")
    default_weights = {"attention": 1.0, "pair": 0.5}

    def __init__(self, attack=None, weights=None, warmup_steps: int = 0, layers=None, p: float = 2.0,
                 distance: str = "mse"):
        super().__init__(attack, weights, warmup_steps)
        if self.attack is None:
            raise ValueError("AT+ALP needs an attack.")
        self.layers = None if layers is None else list(layers)
        self.p = float(p)
        self.distance = check_distance(distance)

    def _layers(self, model):
        if self.layers:
            return self.layers
        return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] or \
            [last_conv_layer(model)]

    def loss_terms(self, model, x, y, adv) -> DefenseOutput:
        split = split_model(model, self._layers(model))
        batch = tf.shape(x)[0]
        *features, logits = split(tf.concat([x, adv], 0), training=True)
        attention = tf.add_n([
            replica_mean(distance(q[:batch], q[batch:], "l2")) for q in activation_attention(features, self.p)
        ])
        clean_logits, adv_logits = logits[:batch], logits[batch:]
        pair = replica_mean(distance(clean_logits, adv_logits, self.distance))
        return DefenseOutput.stacked(logits, y, 2, {"attention": attention, "pair": pair}, clean_logits=clean_logits,
                                     adv_logits=adv_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "layers": self.layers, "p": self.p, "distance": self.distance}
