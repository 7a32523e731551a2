"""CPU speed: whether TensorFlow's oneDNN kernels are on, and one warning when training without them.

`import keras_attdef` before TensorFlow sets `TF_ENABLE_ONEDNN_OPTS=1` unless the variable is set; but
TensorFlow reads the variable once, when it is imported, so a program that imports TensorFlow first
keeps TensorFlow's own choice, which is "off" on some CPUs. Adversarial training then runs at about half
speed (benchmarks/RESULTS.md). `RobustModel.compile` says so once per process, with the fix.
"""
from __future__ import annotations

import warnings

_warned = False

ONEDNN_ADVICE = (
    "TensorFlow's oneDNN CPU kernels are off, so adversarial training here runs at about half the speed "
    "it could. Set TF_ENABLE_ONEDNN_OPTS=1 in the environment before TensorFlow is imported (or import "
    "keras_attdef before tensorflow), or set TF_ENABLE_ONEDNN_OPTS=0 explicitly to keep it off and "
    "silence this warning."
)


def onednn_enabled() -> bool | None:
    """True or False as TensorFlow decided at import time; None when this TensorFlow cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # the only place TF exposes the decision
    except ImportError:
        return None
    check = getattr(_pywrap_util_port, "IsMklEnabled", None)
    return None if check is None else bool(check())


def warn_if_onednn_off() -> bool:
    """Warns once per process when training on CPUs only with oneDNN off; returns whether it warned now."""
    global _warned
    import os

    import tensorflow as tf

    if _warned or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" or tf.config.list_physical_devices("GPU"):
        return False
    if onednn_enabled() is False:
        _warned = True
        warnings.warn(ONEDNN_ADVICE, RuntimeWarning, stacklevel=3)
        return True
    return False
