"""Input checks every entry point runs first: budgets, images and labels, with errors that say what to do.

Attacks, defences and `RobustModel` check tensors (`check_eps`, `check_range`, `check_labels`): eagerly a
bad input raises `ValueError` at once; inside a graph the range check becomes a `tf.debugging` assertion
(a no-op under XLA, where the eager path or the step's own check runs first). Evaluation, the detector
and certificates check whole arrays against a model (`check_images`, `check_inputs`, `num_classes_of`).

Example:

>>> import numpy as np
>>> from keras_attdef.inputs import check_images
>>> check_images(np.full((2, 28, 28, 1), 300.0), (None, 28, 28, 1))
Traceback (most recent call last):
...
ValueError: Inputs must lie in [0.0, 1.0]; got values in [300, 300]: they look like 0-255 pixels: divide by 255 (x / 255; datasets.load does this). If the network was trained on another range, pass clip_min and clip_max for it.
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf


def check_eps(eps, name: str = "eps"):
    """Raises `ValueError` for a negative (or non-finite) budget that can be read now; returns `eps`."""
    value = None
    if isinstance(eps, numbers.Number):
        value = float(eps)
    elif tf.is_tensor(eps) and tf.executing_eagerly():
        value = float(tf.reduce_min(eps))
    if value is not None and (value < 0 or not np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return eps


def _check_bounds(clip_min: float, clip_max: float) -> None:
    if clip_min >= clip_max:
        raise ValueError(f"clip_min ({clip_min}) must be below clip_max ({clip_max}).")


def _nan_message(what: str) -> str:
    return f"The {what} contain NaN or infinite values; clean the data first."


def _range_message(low: float, high: float, clip_min: float, clip_max: float, what: str = "inputs") -> str:
    """Why values in [low, high] are refused, with the likely cause and its fix."""
    if high > 2 and low >= 0:
        hint = "they look like 0-255 pixels: divide by 255 (x / 255; datasets.load does this)"
    elif low < 0 <= clip_min:
        hint = "they look standardised: undo it (x * std + mean, e.g. x * 0.3081 + 0.1307 for MNIST)"
    else:
        hint = "rescale them into that range"
    return (f"{what[0].upper()}{what[1:]} must lie in [{clip_min}, {clip_max}]; got values in [{low:.4g}, "
            f"{high:.4g}]: {hint}. If the network was trained on another range, pass clip_min and clip_max for it.")


def check_range(x, clip_min: float, clip_max: float):
    """Checks that `x` is floating point, has no NaN and lies in [clip_min, clip_max]; returns it as a tensor."""
    _check_bounds(clip_min, clip_max)
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"Inputs must be floating point in [{clip_min}, {clip_max}], got dtype {x.dtype.name}. "
            "Scale uint8 images with x / 255 (datasets.load does this)."
        )
    if tf.executing_eagerly():
        low, high = float(tf.reduce_min(x)), float(tf.reduce_max(x))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(_nan_message("inputs"))
        if low < clip_min or high > clip_max:
            raise ValueError(_range_message(low, high, clip_min, clip_max))
        return x
    message = f"Inputs must lie in [{clip_min}, {clip_max}] with no NaN (min, max follow)."
    ok = tf.logical_and(tf.reduce_all(x >= clip_min), tf.reduce_all(x <= clip_max))  # NaN fails both
    with tf.control_dependencies([tf.debugging.Assert(ok, [message, tf.reduce_min(x), tf.reduce_max(x)])]):
        return tf.identity(x)


def check_images(x, expected_shape=None, clip_min: float = 0.0, clip_max: float = 1.0, *, what: str = "inputs",
                 tolerance: float = 0.0, dtype=np.float32) -> np.ndarray:
    """`x` as a numpy array of `dtype`, after checking its shape, finiteness and range.

    Args:
        x: the images.
        expected_shape: the shape `x` must have, None entries matching anything (a model's `input_shape`);
            None: any shape.
        clip_min: smallest valid value (the range the network was trained on).
        clip_max: largest valid value.
        what: how errors name `x`.
        tolerance: values this far outside the range are rounding: accepted and clipped into it.
        dtype: the returned array's dtype.

    Returns:
        `x` as an array of `dtype`, inside [clip_min, clip_max].

    Raises:
        ValueError: another shape, a NaN or infinite value, or values outside the range, with what to do.
    """
    _check_bounds(clip_min, clip_max)
    x = np.asarray(x, dtype)
    if expected_shape is not None and (x.ndim != len(expected_shape) or any(
            e is not None and e != s for e, s in zip(expected_shape, x.shape))):
        shape = "(" + ", ".join("n" if e is None else str(e) for e in expected_shape) + ")"
        raise ValueError(f"Expected {what} of shape {shape}, got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(_nan_message(what))
    if x.size:
        low, high = float(x.min()), float(x.max())
        if low < clip_min - tolerance or high > clip_max + tolerance:
            raise ValueError(_range_message(low, high, clip_min, clip_max, what))
        if tolerance:
            x = np.clip(x, clip_min, clip_max)
    return x


def check_labels(y, x, num_classes: int | None = None):
    """Returns integer labels of shape (batch,) from (batch,), (batch, 1) or one-hot (batch, k).

    Raises:
        ValueError: the labels' batch size or shape does not fit `x`; or (values that can be read now) a
            label is not a whole number, or with `num_classes` is outside [0, num_classes).
    """
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] not in (1, None) and (num_classes is None or y.shape[-1] == num_classes):
        y = tf.argmax(y, axis=-1)  # one-hot or probabilities
    elif y.shape.rank == 2 and y.shape[-1] == 1:
        y = tf.squeeze(y, -1)
    if y.shape.rank != 1:
        raise ValueError(
            f"Labels must have shape (batch,), (batch, 1) or one-hot (batch, {num_classes or 'classes'}); "
            f"got {y.shape} for inputs of shape {x.shape}."
        )
    if x.shape[0] is not None and y.shape[0] is not None and x.shape[0] != y.shape[0]:
        raise ValueError(f"Got {x.shape[0]} inputs but {y.shape[0]} labels; they must match one to one.")
    readable = tf.executing_eagerly() and bool(y.shape[0])  # inside a traced step the labels come from the data
    if y.dtype.is_floating:
        if readable and not bool(tf.reduce_all(tf.equal(y, tf.round(y)))):
            raise ValueError("Labels must be integer class indices (or one-hot vectors); got fractions.")
        y = tf.round(y)
    y = tf.cast(y, tf.int32)
    if num_classes and readable:
        low, high = int(tf.reduce_min(y)), int(tf.reduce_max(y))
        if low < 0 or high >= num_classes:
            raise ValueError(f"Labels must lie in [0, {num_classes - 1}] for a {num_classes}-class model; got "
                             f"labels in [{low}, {high}].")
    return y


def num_classes_of(model) -> int:
    """The length of the model's class vector; a clear error when the output is not one."""
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, list) or shape is None or len(shape) != 2 or not shape[-1] or shape[-1] < 2:
        raise ValueError(
            f"The model must return one vector of class logits per input, shape (batch, classes); its output "
            f"shape is {shape}. Evaluate a classifier (for a multi-output model, build one with only the "
            "logits as output)."
        )
    return int(shape[-1])


def model_input_shape(model):
    """The model's `input_shape` when it has exactly one input, else None (then any shape passes)."""
    shape = getattr(model, "input_shape", None)
    return None if isinstance(shape, list) else shape


def check_inputs(model, x, y, clip_min: float = 0.0, clip_max: float = 1.0):
    """`(x, y)` as float32 and int32 numpy arrays, after checking them against the model.

    Raises:
        ValueError: NaN or values outside [clip_min, clip_max], a shape the model does not take, labels
            that are not one integer per image or are out of the model's class range.
    """
    x = check_images(x, model_input_shape(model), clip_min, clip_max)
    y = check_labels(np.asarray(y), x, num_classes_of(model))
    return x, y.numpy()
