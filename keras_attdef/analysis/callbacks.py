"""`AttentionIoUCallback`: logs attention IoU between clean and attacked probe images during training."""
from __future__ import annotations

import keras
import numpy as np

from keras_attdef.attacks.spec import as_spec
from keras_attdef.attention.areas import iou, top_k_cells
from keras_attdef.attention.gradcam import grad_cam
from keras_attdef.models import last_conv_layer, unwrap


class AttentionIoUCallback(keras.callbacks.Callback):
    """At each epoch end adds `attention_iou` (mean top-k IoU on a fixed probe batch) to the logs.

    Args:
        x: probe images (a fixed batch).
        y: their labels.
        attack: `AttackSpec` (or dict / name) applied to the probe batch.
        cells: k of the top-k attention areas.
        layer: Grad-CAM layer (default the topmost conv layer).

    Example:

    >>> # robust.fit(ds, callbacks=[AttentionIoUCallback(x[:64], y[:64], AttackSpec("pgd", eps=0.3))])
    """

    def __init__(self, x, y, attack, cells: int = 10, layer: str | None = None):
        super().__init__()
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y).reshape(-1)
        self.attack = as_spec(attack)
        self.cells = int(cells)
        self.layer = layer
        self.history: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        model = unwrap(self.model)
        layer = self.layer or last_conv_layer(model)
        x_adv = self.attack(model, self.x, self.y)
        clean = top_k_cells(grad_cam(model, self.x, layer), self.cells)
        adv = top_k_cells(grad_cam(model, x_adv, layer), self.cells)
        value = float(np.mean(iou(clean, adv).numpy()))
        self.history.append(value)
        if logs is not None:
            logs["attention_iou"] = value
