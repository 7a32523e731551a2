"""Reading a dense-relu-dense Keras model as the weights `(W, b, V, c)` the certificate is about."""
from __future__ import annotations

import keras
import numpy as np


class NotTwoLayerError(ValueError):
    """The model is not Flatten? -> Dense(relu) -> Dense(linear)."""


def dense_layers(model: keras.Model):
    """The two Dense layers of a dense-relu-dense Keras model (graph-safe: no weights are read).

    Raises:
        NotTwoLayerError: any other architecture, saying what was found.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    others = [layer for layer in model.layers
              if not isinstance(layer, (keras.layers.Dense, keras.layers.Flatten, keras.layers.InputLayer))]
    activations = [getattr(layer.activation, "__name__", str(layer.activation)) for layer in dense]
    if len(dense) != 2 or others or activations != ["relu", "linear"]:
        raise NotTwoLayerError(
            f"The certificate covers f(x) = V relu(W x + b) + c: Flatten, Dense(relu), Dense(linear). Model "
            f"{model.name!r} has dense layers with activations {activations} and other layers "
            f"{[type(layer).__name__ for layer in others]}. Build it with models.two_layer_dense."
        )
    return dense


def two_layer_weights(model: keras.Model):
    """`(W, b, V, c)` in float64 from a dense-relu-dense Keras model (W: hidden x inputs).

    Raises:
        NotTwoLayerError: any other architecture, saying what was found.
    """
    first, second = dense_layers(model)
    kernel1, bias1 = (np.asarray(w, np.float64) for w in first.get_weights())
    kernel2, bias2 = (np.asarray(w, np.float64) for w in second.get_weights())
    return kernel1.T, bias1, kernel2.T, bias2



def as_weights(model_or_weights):
    """`(W, b, V, c)` in float64 from a dense-relu-dense model or from the weights themselves."""
    if isinstance(model_or_weights, keras.Model):
        return two_layer_weights(model_or_weights)
    return tuple(np.asarray(t, np.float64) for t in model_or_weights)
