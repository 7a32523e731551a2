"""`attack_model`: the copy of a classifier the attacks differentiate, in float32 or bfloat16.

An attack needs the model's gradients and logits many times per point; mostly their sign and rough size.
On a CPU with bfloat16 instructions (AVX512_BF16 / AMX) or a GPU, a bfloat16 copy computes them faster:
the standard cascade ran 1.57x faster on this project's CPU. Every candidate is still judged on the float32
model: a point counts as fooled only if the float32 model misclassifies it, so a lower precision can only
make an attack weaker, never report an adversarial example that is not one. It is weaker: on the main
job's model the bfloat16 cascade left 0.6 points more of 1,000 digits robust (`benchmarks/RESULTS.md`,
`benchmarks/attack_precision.py`), so float32 stays the default and the figure to cite.

Example:

>>> from keras_attdef import models
>>> net = models.small_lenet()
>>> copy = attack_model(net, "bfloat16")
>>> inner = copy.layers[1]  # the clone; the wrapper casts its logits back to float32
>>> inner.layers[-1].compute_dtype, copy.output.dtype
('bfloat16', 'float32')
>>> attack_model(net, "float32") is net
True
"""
from __future__ import annotations

import keras

PRECISIONS = ("float32", "bfloat16")


def attack_model(base, precision: str = "float32"):
    """The model the attacks run on: `base` itself, or a bfloat16-compute copy with its weights.

    Args:
        base: a Keras classifier returning logits (float32 weights).
        precision: `"float32"` (the model itself) or `"bfloat16"` (compute in bfloat16, weights in float32,
            logits cast back to float32 so every attack's loss is computed in float32).

    Returns:
        A Keras model with `base`'s weights.

    Raises:
        ValueError: an unknown precision, or a model that cannot be rebuilt layer by layer from its config
            (a subclassed model): evaluate it with `precision="float32"`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown attack precision {precision!r}; choose one of {PRECISIONS}.")
    if precision == "float32":
        return base
    try:
        copy = keras.models.clone_model(base, clone_function=_in_mixed_bfloat16)
    except Exception as error:  # clone_model cannot rebuild subclassed models
        raise ValueError(f"Cannot make a bfloat16 copy of {base.name!r} ({error}); attack it with "
                         "precision='float32'.") from error
    copy.set_weights(base.get_weights())
    inputs = keras.Input(base.input_shape[1:])
    logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(copy(inputs))
    return keras.Model(inputs, logits, name=f"{base.name}_bfloat16")


def _in_mixed_bfloat16(layer):
    return layer.__class__.from_config({**layer.get_config(), "dtype": "mixed_bfloat16"})
