"""keras_attdef: adversarial defences, attacks and certificates for Keras 3 image classifiers.

Example:

>>> import keras_attdef as kad
>>> robust = kad.RobustModel(kad.models.lenet(), defense="fast")
>>> robust.compile(optimizer="adam", metrics=["accuracy"])
"""
from keras_attdef import attacks, attention, datasets, defenses, losses, models
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.evaluation import evaluate_robustness
from keras_attdef.robust_model import RobustModel

__version__ = "0.1.0"

__all__ = [
    "AttackSpec", "RobustModel", "attacks", "attention", "datasets", "defenses", "evaluate_robustness", "losses", "models",
]
