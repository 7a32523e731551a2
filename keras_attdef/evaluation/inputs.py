"""Checks every evaluation entry point runs first, and batched predictions."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


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


def check_images(model, x, clip_min: float = 0.0, clip_max: float = 1.0) -> np.ndarray:
    """`x` as a float32 numpy array, after checking values and shape against the model.

    Raises:
        ValueError: NaN or values outside [clip_min, clip_max], or a shape the model does not take.
    """
    x = np.asarray(x, np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("Inputs contain NaN or infinite values; clean the data before evaluating.")
    if x.size and (x.min() < clip_min or x.max() > clip_max):
        raise ValueError(f"Inputs must lie in [{clip_min}, {clip_max}], got [{x.min():.4g}, {x.max():.4g}]. Rescale "
                         "them (e.g. x / 255) or pass clip_min / clip_max matching your preprocessing.")
    expected = getattr(model, "input_shape", None)
    if expected is not None and not isinstance(expected, list):
        if len(expected) != x.ndim or any(e is not None and e != s for e, s in zip(expected[1:], x.shape[1:])):
            raise ValueError(f"The model takes inputs of shape {expected}; got {x.shape}.")
    return x


def check_inputs(model, x, y, clip_min: float = 0.0, clip_max: float = 1.0):
    """`(x, y)` as float32 and int32 numpy arrays, after checking them against the model.

    Raises:
        ValueError: NaN or values outside [clip_min, clip_max], a shape the model does not take, labels
            that are not one integer per image or are out of the model's class range.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(-1)  # one-hot
    y = y.reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels; they must match one to one.")
    x = check_images(model, x, clip_min, clip_max)
    classes = num_classes_of(model)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("Labels must be integer class indices (or one-hot vectors).")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"Labels must lie in [0, {classes - 1}] for a model with {classes} classes; "
                         f"got [{y.min()}, {y.max()}].")
    return x, y.astype(np.int32)


def predict_labels(model, x, batch_size: int = 500) -> np.ndarray:
    """Argmax predictions in inference mode, in batches."""
    out = [np.argmax(np.asarray(model(tf.constant(x[i:i + batch_size]), training=False)), -1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)
