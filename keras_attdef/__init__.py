"""keras_attdef: adversarial defences, attacks and certificates for Keras 3 image classifiers.

Example:

>>> import keras_attdef as kad
>>> robust = kad.RobustModel(kad.models.lenet(), defense="fast")
>>> robust.compile(optimizer="adam", metrics=["accuracy"])
"""
import os as _os
import sys as _sys

if "tensorflow" not in _sys.modules:
    # TensorFlow leaves oneDNN off on some CPUs (this project's machines among them); on, adversarial
    # training steps ran ~1.8x faster here. Only a default: TF_ENABLE_ONEDNN_OPTS=0 (or importing
    # TensorFlow first) keeps TensorFlow's own choice.
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_attdef.backend import require_tensorflow_backend as _require_tensorflow_backend

_require_tensorflow_backend()

from keras_attdef import (analysis, attacks, attention, callbacks, certify, datasets, defenses, detect,
                          distribute, evaluation, losses, models)
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.evaluation import autoattack, evaluate, evaluate_robustness
from keras_attdef.robust_model import RobustModel

__version__ = "0.1.0"

__all__ = [
    "AttackSpec", "RobustModel", "analysis", "attacks", "attention", "autoattack", "callbacks", "certify", "datasets",
    "defenses", "detect", "distribute", "evaluate", "evaluate_robustness", "evaluation", "losses", "models",
]
