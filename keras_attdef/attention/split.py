"""One forward pass that returns named feature maps and the logits (a functional model split)."""
from __future__ import annotations

import weakref

import keras

from keras_attdef.models import get_layer

_SPLITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def split_model(model: keras.Model, layer_names) -> keras.Model:
    """A model with the same weights returning `[features of each layer..., logits]` in one pass.

    Cached per model and layer list. Raises `ValueError` naming the model's layers when one is missing,
    and when the model is not functional (it needs `model.inputs`).
    """
    layer_names = tuple(layer_names)
    cache = _SPLITS.setdefault(model, {})
    if layer_names not in cache:
        if not getattr(model, "inputs", None):
            raise ValueError(
                f"Model {model.name!r} is not a functional (or built Sequential) model, so its layers "
                "cannot be read out; build it with keras.Input(...) and the functional API."
            )
        features = [get_layer(model, name).output for name in layer_names]
        cache[layer_names] = keras.Model(model.inputs, [*features, model.outputs[0]],
                                         name=f"{model.name}_split")
    return cache[layer_names]
