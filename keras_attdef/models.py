"""Functional model zoo with named layers. Every model returns logits (no softmax).

Attention needs a named conv layer: `lenet` names its convs `conv1`, `conv2`; `cifarnet` `conv1`,
`conv2`; `small_resnet` `stem`, `block{i}_out`. `last_conv_layer(model)` finds the topmost one.

Example:

>>> from keras_attdef import models
>>> net = models.lenet()
>>> net.output_shape, models.last_conv_layer(net)
((None, 10), 'conv2')
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def lenet(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, dropout: float = 0.5,
          name: str = "lenet", filters: tuple[int, int] = (32, 64), units: int = 1024) -> keras.Model:
    """The TF-slim LeNet the AAD paper uses on MNIST.

    conv 32 5x5 -> max-pool 2 -> conv 64 5x5 -> max-pool 2 -> dense 1024 -> dropout -> dense.

    Args:
        input_shape: image shape, channels-last.
        num_classes: number of logits.
        dropout: drop rate before the last layer (the paper's keep-prob 0.5); 0 disables it.
        name: model name.
        filters: channels of `conv1` and `conv2`.
        units: width of the dense layer.

    Returns:
        A functional `keras.Model` returning logits; its conv layers are `conv1`, `conv2`.
    """
    inputs = keras.Input(input_shape, name="image")
    h = layers.Conv2D(filters[0], 5, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(filters[1], 5, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(2, name="pool2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(units, activation="relu", name="fc3")(h)
    if dropout:
        h = layers.Dropout(dropout, name="dropout3")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def small_lenet(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10,
                name: str = "small_lenet") -> keras.Model:
    """LeNet at half the channels, a quarter of the dense units and no dropout: the quick robust recipe's model.

    conv 16 5x5 -> max-pool 2 -> conv 32 5x5 -> max-pool 2 -> dense 256 -> dense. About a third of
    `lenet`'s work per image, and wide enough for PGD training at eps 0.3 on MNIST (see the README's
    main job and `benchmarks/RESULTS.md`, "time to robustness").

    Args:
        input_shape: image shape, channels-last.
        num_classes: number of logits.
        name: model name.

    Returns:
        A functional `keras.Model` returning logits; its conv layers are `conv1`, `conv2`.

    Example:

    >>> small_lenet().count_params() < lenet().count_params() // 5
    True
    """
    return lenet(input_shape, num_classes, dropout=0.0, name=name, filters=(16, 32), units=256)


def small_cam_lenet(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10,
                    name: str = "small_cam_lenet", filters: tuple[int, int, int] = (16, 32, 128)) -> keras.Model:
    """`small_lenet`'s convolutions with a class-activation head: conv -> global average pool -> dense.

    conv 16 5x5 -> max-pool 2 -> conv 32 5x5 -> max-pool 2 -> conv3 128 3x3 -> global average pool -> dense.
    Class k's activation map is `sum_c W[c, k] A_c` over conv3's features A; its spatial mean is the logit
    minus its bias, so a map cannot vanish while its logit stays large (Boopathy et al., arXiv:2006.14748).
    The signed Grad-CAM of conv3 (`attention.grad_cam(..., activation="none")`) is that map divided by the
    number of cells.

    Args:
        input_shape: image shape, channels-last.
        num_classes: number of logits.
        name: model name.
        filters: channels of `conv1`, `conv2` and `conv3`.

    Returns:
        A functional `keras.Model` returning logits; its conv layers are `conv1`, `conv2`, `conv3`.

    Example:

    >>> from keras_attdef import models
    >>> net = models.small_cam_lenet()
    >>> models.last_conv_layer(net), net.count_params() < models.small_lenet().count_params()
    ('conv3', True)
    """
    inputs = keras.Input(input_shape, name="image")
    h = layers.Conv2D(filters[0], 5, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(filters[1], 5, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(2, name="pool2")(h)
    h = layers.Conv2D(filters[2], 3, padding="same", activation="relu", name="conv3")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def cifarnet(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, dropout: float = 0.5,
             name: str = "cifarnet") -> keras.Model:
    """The TF-slim CifarNet the AAD paper uses on CIFAR-10 (local response normalisation omitted).

    conv 64 5x5 -> max-pool 3/2 -> conv 64 5x5 -> max-pool 3/2 -> dense 384 -> dense 192 -> dense.

    Args:
        input_shape: image shape, channels-last.
        num_classes: number of logits.
        dropout: drop rate after the 384-unit layer.
        name: model name.

    Returns:
        A functional `keras.Model` returning logits; its conv layers are `conv1`, `conv2`.
    """
    inputs = keras.Input(input_shape, name="image")
    h = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(h)
    h = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(384, activation="relu", name="fc3")(h)
    if dropout:
        h = layers.Dropout(dropout, name="dropout3")(h)
    h = layers.Dense(192, activation="relu", name="fc4")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def two_layer_dense(
    hidden: int = 500,
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    name: str = "dense_2layer",
) -> keras.Model:
    """`f(x) = V relu(W x + b) + c` on the flattened image: the network the SDP certificate covers.

    Args:
        hidden: hidden units.
        input_shape: image shape (flattened inside the model).
        num_classes: number of logits.
        name: model name.

    Returns:
        A functional `keras.Model` with layers `flatten`, `hidden` (relu) and `logits`.
    """
    inputs = keras.Input(input_shape, name="image")
    h = layers.Flatten(name="flatten")(inputs)
    h = layers.Dense(hidden, activation="relu", name="hidden")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def small_resnet(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    widths: tuple[int, ...] = (16, 32, 64),
    name: str = "small_resnet",
) -> keras.Model:
    """A pre-activation-free ResNet with one basic block per stage and BatchNorm.

    Args:
        input_shape: image shape, channels-last.
        num_classes: number of logits.
        widths: channels per stage; every stage after the first halves the resolution.
        name: model name.

    Returns:
        A functional `keras.Model`; stage outputs are `block{i}_out` (conv feature maps).
    """
    inputs = keras.Input(input_shape, name="image")
    h = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(inputs)
    h = layers.BatchNormalization(name="stem_bn")(h)
    h = layers.Activation("relu", name="stem_relu")(h)
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        shortcut = h
        y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"block{i}_conv1")(h)
        y = layers.BatchNormalization(name=f"block{i}_bn1")(y)
        y = layers.Activation("relu", name=f"block{i}_relu1")(y)
        y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv2")(y)
        y = layers.BatchNormalization(name=f"block{i}_bn2")(y)
        if stride != 1 or shortcut.shape[-1] != width:
            shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False, name=f"block{i}_proj")(shortcut)
            shortcut = layers.BatchNormalization(name=f"block{i}_proj_bn")(shortcut)
        h = layers.Add(name=f"block{i}_add")([y, shortcut])
        h = layers.Activation("relu", name=f"block{i}_out")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def unwrap(model):
    """The classifier inside a wrapper (a `RobustModel`'s `base_model`), or `model` itself.

    Attacks, maps and evaluations run on the plain classifier: a wrapper's own `call` is the same function,
    but its `train_step` machinery and metrics are not what an attack should touch.

    Example:

    >>> net = lenet()
    >>> unwrap(net) is net
    True
    """
    return getattr(model, "base_model", model)


def predict_labels(model, x, batch_size: int = 500) -> np.ndarray:
    """The model's argmax predictions for `x`, in inference mode and in batches.

    Example:

    >>> predict_labels(lenet(), np.zeros((3, 28, 28, 1), "float32")).shape
    (3,)
    """
    out = [np.argmax(np.asarray(model(tf.constant(x[i:i + batch_size]), training=False)), -1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


# The registry the CLI, experiments and benchmarks read: a new architecture is one function and one line here.
REGISTRY = {"lenet": lenet, "small_lenet": small_lenet, "small_cam_lenet": small_cam_lenet, "cifarnet": cifarnet,
            "small_resnet": small_resnet, "two_layer_dense": two_layer_dense}


def get(name: str):
    """The model builder registered as `name` (see `REGISTRY`).

    Example:

    >>> get("small_lenet")().name
    'small_lenet'
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(REGISTRY)}.")
    return REGISTRY[name]


def last_conv_layer(model: keras.Model) -> str:
    """Name of the topmost layer producing a 4-D feature map that is not a pooling layer (the usual
    Grad-CAM layer: `conv2` in LeNet, `block2_out` in the small ResNet).

    Raises:
        ValueError: the model has no such layer.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer) or "Pooling" in type(layer).__name__:
            continue
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is not None and len(shape) == 4:
            return layer.name
    raise ValueError(f"Model {model.name!r} has no convolutional (4-D output) layer for attention.")


def get_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """`model.get_layer(name)` with an error that lists the layers there are."""
    try:
        return model.get_layer(name)
    except ValueError:
        names = [layer.name for layer in model.layers]
        raise ValueError(
            f"Model {model.name!r} has no layer named {name!r}. Its layers are: {names}. "
            "Pass one of these (for attention: a conv layer, see models.last_conv_layer)."
        ) from None
