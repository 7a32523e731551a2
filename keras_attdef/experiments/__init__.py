"""Reproducible experiments: train -> evaluate -> table, each stage stored so a stopped run resumes.

This layer sits above the library (it builds `RobustModel`s, loads data and prints); the library below
never imports it. `certification`: plain vs certified two-layer nets against flow fields and the Linf
sanity case (`keras-attdef certify`, `scripts/certify_mnist.py`).
"""
from keras_attdef.experiments.store import ResultStore

__all__ = ["ResultStore"]
