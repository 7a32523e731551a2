"""The Latent Attention Network (Grimm et al., 2017, arXiv:1706.07979): a mask of the pixels a classifier needs.

The generator G maps an image to one value per pixel in [0, 1]. With the corruption mask A = 1 - G(x),
eq. 8 of the thesis ("Two approaches to defend against adversarial examples", section 3.1) corrupts the
image, `x~ = A * eta + (1 - A) * x` with noise eta, and eq. 9 trains G to corrupt as much as it can
(`- beta * mean(A)`) while the classifier's output on x~ stays that on x (the classifier's own loss
between the two). Pixels G keeps (values near 1) are those the classifier needs: the attention mask.

The thesis argues that a better mask generator would make the detector better. One G can be made
insensitive to small perturbations by design: `mask_generator(squeeze_bits=1)` first rounds its input to
`2**bits` grey levels (feature squeezing, Xu, Evans and Qi, 2018, arXiv:1704.01155), so a perturbation
that does not cross a rounding threshold cannot move the mask. The rounding passes gradients straight
through (BPDA, Athalye et al., 2018, arXiv:1802.00420), so an adaptive attacker still gets a useful gradient.
`median_size=3` adds the other squeezer of that paper, a median filter before the rounding: it removes
isolated changed pixels, the kind JSMA makes; its gradient passes straight through as well.
"""
from __future__ import annotations

import keras
import tensorflow as tf

NOISES = ("uniform", "gaussian", "shuffle")


@keras.saving.register_keras_serializable(package="keras_attdef")
class BitDepthReduction(keras.layers.Layer):
    """Rounds images to `2**bits` levels of [clip_min, clip_max]; gradients pass straight through.

    The forward pass is the squeezed image; the backward pass is the identity (BPDA), so attacks through
    the layer see the gradient of the rest of the network instead of zero.

    Args:
        bits: bits per value (1: black or white).
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Example:

    >>> import numpy as np
    >>> BitDepthReduction(bits=1)(np.array([[0.2, 0.6]], "float32")).numpy().tolist()
    [[0.0, 1.0]]
    """

    def __init__(self, bits: int = 1, clip_min: float = 0.0, clip_max: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if int(bits) != bits or bits < 1:
            raise ValueError(f"bits must be a positive integer, got {bits!r}.")
        if clip_max <= clip_min:
            raise ValueError(f"clip_max ({clip_max}) must exceed clip_min ({clip_min}).")
        self.bits, self.clip_min, self.clip_max = int(bits), float(clip_min), float(clip_max)

    def call(self, x):
        levels = 2.0 ** self.bits - 1.0
        span = self.clip_max - self.clip_min
        squeezed = tf.round((x - self.clip_min) / span * levels) / levels * span + self.clip_min
        return x + tf.stop_gradient(squeezed - x)

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits, "clip_min": self.clip_min, "clip_max": self.clip_max}


@keras.saving.register_keras_serializable(package="keras_attdef")
class MedianSmoothing(keras.layers.Layer):
    """A `size` x `size` median filter per channel (zero padding at the border); gradients pass straight through.

    Args:
        size: the window's side (odd, >= 3).

    Example:

    >>> import numpy as np
    >>> speck = np.zeros((1, 5, 5, 1), "float32"); speck[0, 2, 2, 0] = 1.0   # one isolated changed pixel
    >>> float(MedianSmoothing(3)(speck).numpy().max())
    0.0
    """

    def __init__(self, size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 3 or size % 2 == 0:
            raise ValueError(f"size must be an odd integer >= 3, got {size!r}.")
        self.size = int(size)

    def call(self, x):
        k = self.size
        patches = tf.image.extract_patches(x, sizes=[1, k, k, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1],
                                           padding="SAME")
        shape = tf.shape(x)
        patches = tf.reshape(patches, tf.concat([shape[:3], [k * k, shape[3]]], 0))  # (b, h, w, k*k, c)
        median = tf.sort(patches, axis=3)[:, :, :, (k * k) // 2, :]
        return x + tf.stop_gradient(median - x)

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def mask_generator(input_shape: tuple, hidden: tuple = (512, 512), squeeze_bits: int | None = None,
                   clip_min: float = 0.0, clip_max: float = 1.0, name: str = "mask_generator",
                   median_size: int | None = None) -> keras.Model:
    """G: a fully connected network (the thesis's 3 layers) from an image to a `(height, width, 1)` mask.

    Args:
        input_shape: the classifier's image shape `(height, width, channels)`.
        hidden: widths of the hidden ReLU layers.
        squeeze_bits: if set, G sees its input rounded to `2**squeeze_bits` levels (`BitDepthReduction`).
        median_size: if set, G sees its input median-filtered first (`MedianSmoothing`).
        clip_min: smallest valid input value (for the rounding).
        clip_max: largest valid input value (for the rounding).
        name: model name.

    Returns:
        A functional `keras.Model` with sigmoid outputs, one per pixel (shared by the channels).
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    inputs = keras.Input(tuple(input_shape), name="image")
    h = inputs if median_size is None else MedianSmoothing(median_size, name="median")(inputs)
    h = h if squeeze_bits is None else BitDepthReduction(squeeze_bits, clip_min, clip_max, name="squeeze")(h)
    h = keras.layers.Flatten()(h)
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden{i + 1}")(h)
    h = keras.layers.Dense(height * width, activation="sigmoid", name="mask")(h)
    return keras.Model(inputs, keras.layers.Reshape((height, width, 1))(h), name=name)


def corrupt(x, mask, noise: str = "uniform", noise_scale: float = 1.0, clip_min: float = 0.0,
            clip_max: float = 1.0):
    """Eq. 8: keeps `x` where the mask is 1 and replaces it with noise where it is 0.

    Args:
        x: images `(batch, height, width, channels)`.
        mask: `(batch, height, width, 1)` in [0, 1] (G's output; the corruption mask is `1 - mask`).
        noise: `"uniform"` (uniform in [clip_min, clip_max]), `"gaussian"` (x plus normal noise of std
            `noise_scale`, clipped) or `"shuffle"` (the pixels of another image of the batch: noise from
            the data distribution).
        noise_scale: the Gaussian's standard deviation.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The corrupted batch.
    """
    if noise == "uniform":
        eta = tf.random.uniform(tf.shape(x), clip_min, clip_max, dtype=x.dtype)
    elif noise == "gaussian":
        eta = tf.clip_by_value(x + noise_scale * tf.random.normal(tf.shape(x), dtype=x.dtype), clip_min, clip_max)
    elif noise == "shuffle":
        eta = tf.roll(x, shift=1, axis=0)
    else:
        raise ValueError(f"Unknown noise {noise!r}; choose one of {NOISES}.")
    return mask * x + (1.0 - mask) * eta


def lan_loss(classifier, generator, x, beta: float, noise: str = "uniform", noise_scale: float = 1.0,
             clip_min: float = 0.0, clip_max: float = 1.0):
    """Eq. 9 on a batch: `(loss, fidelity, corrupted share)`.

    The fidelity term is the classifier's cross-entropy between its output on the corrupted image and
    its (soft) output on x; the classifier runs in inference mode and is not trained.
    """
    target = tf.nn.softmax(classifier(x, training=False))
    mask = generator(x, training=True)
    logits = classifier(corrupt(x, mask, noise, noise_scale, clip_min, clip_max), training=False)
    fidelity = tf.reduce_mean(keras.losses.categorical_crossentropy(target, logits, from_logits=True))
    corrupted = 1.0 - tf.reduce_mean(mask)
    return fidelity - beta * corrupted, fidelity, corrupted


class MaskGeneratorTrainer(keras.Model):
    """Trains G with eq. 9 through `fit`; the classifier is frozen (only G's variables are updated)."""

    def __init__(self, classifier, generator, beta: float, noise: str = "uniform", noise_scale: float = 1.0,
                 clip_min: float = 0.0, clip_max: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.classifier, self.generator = classifier, generator
        self.beta, self.noise, self.noise_scale = float(beta), noise, float(noise_scale)
        self.clip_min, self.clip_max = float(clip_min), float(clip_max)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "fidelity", "corrupted")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.generator(x, training=training)

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            values = lan_loss(self.classifier, self.generator, x, self.beta, self.noise, self.noise_scale,
                              self.clip_min, self.clip_max)
        variables = self.generator.trainable_variables
        self.optimizer.apply(tape.gradient(values[0], variables), variables)
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
