"""Certificates against flow-field (spatial) attacks. So far: exact interval bounds of the warp."""
from keras_attdef.certify.intervals import warp_intervals

__all__ = ["warp_intervals"]
