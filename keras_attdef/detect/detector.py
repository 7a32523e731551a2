"""Classification-interpretation contrastive detection (thesis section 3.2).

Three networks: the classifier f1 under protection, the LAN mask generator G (`detect.lan`) and a mask
classifier f2 that labels an image from its attention mask alone. An input whose f1 label differs from
f2's label of its mask is flagged adversarial: a small perturbation can move f1's decision, but the
thesis found it rarely moves the mask's. f2's label is also a guess of the true class (the recovery).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_attdef import models
from keras_attdef.detect.lan import NOISES, MaskGeneratorTrainer, mask_generator
from keras_attdef.inputs import check_images, check_inputs, model_input_shape, num_classes_of
from keras_attdef.evaluation.robustness import adversarial_examples


class NotFittedError(RuntimeError):
    """The detector was used before `fit`."""


@keras.saving.register_keras_serializable(package="keras_attdef")
class LatentAttentionDetector(keras.Model):
    """Flags inputs whose classifier label differs from the label of their attention mask.

    `fit(x, y)` trains the mask generator G on the classifier (eq. 9) and then the mask classifier f2 on
    the training masks; the classifier itself is never changed. The whole detector saves to and loads
    from one `.keras` file.

    Args:
        classifier: the trained Keras classifier f1 (returns logits).
        generator: the mask generator G (default `lan.mask_generator`).
        mask_classifier: f2 (default a LeNet on `(height, width, 1)` masks).
        beta: eq. 9's weight of the corrupted share: larger gives sparser masks.
        noise: the noise distribution eta (`"uniform"`, `"gaussian"`, `"shuffle"`; see `lan.corrupt`).
        noise_scale: the Gaussian noise's standard deviation.
        squeeze_bits: for the default generator: round its input to `2**squeeze_bits` levels first
            (`lan.BitDepthReduction`), so perturbations below a rounding threshold cannot move the mask.
        median_size: for the default generator: median-filter its input first (`lan.MedianSmoothing`), so
            isolated changed pixels (JSMA's) cannot move the mask.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        fitted: set by `fit` (and restored on load).
        threshold: also flag an input when its `score` (1 - f2's probability of f1's label) exceeds this;
            None: the thesis's rule alone (flag when the labels differ). Set it with `calibrate`.

    Example:

    >>> import numpy as np
    >>> from keras_attdef import datasets, detect, models
    >>> x, y = datasets.load("mnist", "train", limit=256)
    >>> detector = detect.LatentAttentionDetector(models.lenet(), beta=1.0)
    >>> _ = detector.fit(x, y, generator_epochs=1, mask_epochs=1, verbose=0)
    >>> detector.detect(x[:4]).shape, float(detector.masks(x[:4]).max()) <= 1.0
    ((4,), True)
    """

    def __init__(self, classifier: keras.Model, generator: keras.Model | None = None,
                 mask_classifier: keras.Model | None = None, beta: float = 1.0, noise: str = "uniform",
                 noise_scale: float = 0.5, squeeze_bits: int | None = None, clip_min: float = 0.0,
                 clip_max: float = 1.0, fitted: bool = False, median_size: int | None = None,
                 threshold: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if noise not in NOISES:
            raise ValueError(f"Unknown noise {noise!r}; choose one of {NOISES}.")
        shape = classifier.input_shape
        if isinstance(shape, list) or len(shape) != 4:
            raise ValueError(f"The classifier must take one image batch (batch, height, width, channels); its input "
                             f"shape is {shape}.")
        num_classes = num_classes_of(classifier)
        self.classifier = classifier
        self.generator = generator or mask_generator(shape[1:], squeeze_bits=squeeze_bits, clip_min=clip_min,
                                                     clip_max=clip_max, median_size=median_size)
        self.squeeze_bits, self.median_size = squeeze_bits, median_size
        self.mask_classifier = mask_classifier or models.lenet((shape[1], shape[2], 1), num_classes,
                                                               name="mask_classifier")
        self.beta, self.noise, self.noise_scale = float(beta), noise, float(noise_scale)
        self.clip_min, self.clip_max = float(clip_min), float(clip_max)
        self.fitted = bool(fitted)
        self.threshold = None if threshold is None else float(threshold)
        self._forward = tf.function(self._outputs, reduce_retracing=True, autograph=False)

    # -- Keras plumbing -----------------------------------------------------------------------------
    def call(self, x, training=False):
        """`{"logits": f1(x), "mask": G(x), "mask_logits": f2(G(x))}`."""
        mask = self.generator(x, training=training)
        return {"logits": self.classifier(x, training=False), "mask": mask,
                "mask_logits": self.mask_classifier(mask, training=training)}

    def build(self, input_shape=None):
        self.built = True

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "mask_classifier": keras.saving.serialize_keras_object(self.mask_classifier),
            "beta": self.beta, "noise": self.noise, "noise_scale": self.noise_scale,
            "squeeze_bits": self.squeeze_bits, "median_size": self.median_size, "clip_min": self.clip_min, "clip_max": self.clip_max, "fitted": self.fitted,
            "threshold": self.threshold,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("classifier", "generator", "mask_classifier"):
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)

    # -- training -----------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size: int = 128, epochs: int | None = None, verbose="auto", callbacks=None, *,
            generator_epochs: int = 3, mask_epochs: int = 3, lr: float = 1e-3, seed: int = 0,
            mask_attacks: dict | None = None, mask_attack_size: int = 2000, **unsupported):
        """Trains G (eq. 9, the classifier frozen), then f2 on the masks of `x` labelled `y`; Keras's `fit` contract.

        The first six arguments are Keras's (`x`, `y`, `batch_size`, `epochs`, `verbose`, `callbacks`) and it
        returns a `keras.callbacks.History`; the two phases' own epochs are keyword arguments, and the
        history's keys are prefixed `generator_` and `mask_`.

        With `mask_attacks`, f2 also learns from the masks of adversarial examples made on the classifier
        from the first `mask_attack_size` training images, labelled with their true class (an extension of
        the thesis: f2 is taught that an attack's changes to the mask do not change the class). It hardens
        the detector against those attacks; measure it on attacks made elsewhere (the transfer rows) and
        with the adaptive attack.

        Args:
            x: training images in [clip_min, clip_max].
            y: their labels.
            batch_size: batch size of both phases.
            epochs: epochs of both phases (None: `generator_epochs` and `mask_epochs`).
            verbose: Keras `fit` verbosity (`"auto"`: 2).
            callbacks: Keras callbacks, passed to both phases.
            generator_epochs: epochs of G.
            mask_epochs: epochs of f2.
            lr: Adam learning rate of both.
            seed: seeds shuffling and noise.
            mask_attacks: `{name: AttackSpec}` whose examples join f2's training set (None: the thesis's f2).
            mask_attack_size: training images attacked per entry of `mask_attacks`.

        Returns:
            A `keras.callbacks.History` whose `history` holds both phases' logs.

        Raises:
            TypeError: a Keras `fit` argument this detector does not support (e.g. `validation_split`).
        """
        if unsupported:
            raise TypeError(f"LatentAttentionDetector.fit does not support {sorted(unsupported)}: it trains two "
                            "networks one after the other; evaluate with detection_report instead.")
        if epochs is not None:
            generator_epochs = mask_epochs = int(epochs)
        verbose = 2 if verbose == "auto" else verbose
        x, y = check_inputs(self.classifier, x, y, self.clip_min, self.clip_max)
        keras.utils.set_random_seed(seed)
        trainer = MaskGeneratorTrainer(self.classifier, self.generator, self.beta, self.noise, self.noise_scale,
                                       self.clip_min, self.clip_max)
        trainer.compile(optimizer=keras.optimizers.Adam(lr))
        data = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed).batch(batch_size)
        generator_history = trainer.fit(data, epochs=generator_epochs, verbose=verbose, shuffle=False,
                                        callbacks=callbacks).history
        masks = self.generator.predict(x, batch_size=500, verbose=0)
        labels = y
        if mask_attacks:
            x_attacked, y_attacked = x[:mask_attack_size], y[:mask_attack_size]
            adversarial = [adversarial_examples(self.classifier, x_attacked, y_attacked, spec, 250, self.clip_min,
                                                self.clip_max, progress=verbose > 0) for spec in mask_attacks.values()]
            masks = np.concatenate([masks, *(self.generator.predict(a, batch_size=500, verbose=0) for a in adversarial)])
            labels = np.concatenate([y] + [y_attacked] * len(adversarial))
        self.mask_classifier.compile(optimizer=keras.optimizers.Adam(lr), metrics=["accuracy"],
                                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        mask_history = self.mask_classifier.fit(masks, labels, batch_size=batch_size, epochs=mask_epochs,
                                                verbose=verbose, shuffle=True, callbacks=callbacks).history
        self.fitted = True
        self.built = True
        history = keras.callbacks.History()
        history.history = {**{f"generator_{k}": v for k, v in generator_history.items()},
                           **{f"mask_{k}": v for k, v in mask_history.items()}}
        return history

    # -- inference ----------------------------------------------------------------------------------
    def _outputs(self, x):
        out = self.call(x, training=False)
        return out["logits"], out["mask"], out["mask_logits"]

    def outputs(self, x, batch_size: int = 500) -> dict:
        """`{"label", "mask", "mask_label", "score", "adversarial"}` as numpy arrays, in batches."""
        if not self.fitted:
            raise NotFittedError("The detector is not fitted: call detector.fit(x_train, y_train) first.")
        x = check_images(x, model_input_shape(self.classifier), self.clip_min, self.clip_max)
        parts = [[], [], []]
        for start in range(0, len(x), batch_size):
            for part, value in zip(parts, self._forward(tf.constant(x[start:start + batch_size]))):
                part.append(value.numpy())
        logits, masks, mask_logits = (np.concatenate(p) for p in parts)
        label, mask_label = logits.argmax(-1), mask_logits.argmax(-1)
        mask_probs = tf.nn.softmax(mask_logits).numpy()
        score = 1.0 - mask_probs[np.arange(len(label)), label]
        adversarial = label != mask_label
        if self.threshold is not None:
            adversarial |= score > self.threshold
        return {"label": label, "mask": masks, "mask_label": mask_label, "score": score, "adversarial": adversarial}

    def calibrate(self, x, pass_rate: float = 0.95, batch_size: int = 500) -> float:
        """Sets `threshold` so that about `pass_rate` of benign inputs like `x` pass (the score's quantile).

        Use benign images the test will not see (e.g. held-out training images). A lower pass rate flags
        more adversarial inputs and more benign ones: `detection_report` shows both sides.

        Args:
            x: benign images.
            pass_rate: share of them that must not be flagged by the score (the label rule may flag a few more).
            batch_size: batch size.

        Returns:
            The threshold set.
        """
        if not 0 < pass_rate < 1:
            raise ValueError(f"pass_rate must be in (0, 1); got {pass_rate}.")
        self.threshold = None
        self.threshold = float(np.quantile(self.score(x, batch_size), pass_rate))
        return self.threshold

    # detect, score, recover and masks each run the networks once; `outputs` gives all of them in one pass.
    def detect(self, x, batch_size: int = 500) -> np.ndarray:
        """Per input, True when it is flagged adversarial: f1's label differs from f2's label of its mask (or, once
        calibrated, the score exceeds `threshold`)."""
        return self.outputs(x, batch_size)["adversarial"]

    def score(self, x, batch_size: int = 500) -> np.ndarray:
        """Per input, `1 - p2(f1's label)`: how little the mask classifier agrees (for ROC curves)."""
        return self.outputs(x, batch_size)["score"]

    def recover(self, x, batch_size: int = 500) -> np.ndarray:
        """Per input, f2's label of its mask: the thesis's recovered class."""
        return self.outputs(x, batch_size)["mask_label"]

    def masks(self, x, batch_size: int = 500) -> np.ndarray:
        """Per input, G's attention mask `(height, width, 1)` in [0, 1]."""
        return self.outputs(x, batch_size)["mask"]
