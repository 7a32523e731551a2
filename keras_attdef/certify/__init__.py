"""Certificates for two-layer ReLU networks against flow-field (spatial) attacks and pixel boxes."""
from keras_attdef.certify.intervals import warp_intervals
from keras_attdef.certify.two_layer import (
    Certificate, NotTwoLayerError, SolverError, certified_accuracy, certify_box, certify_flow, eigen_value_bound,
    optimise_dual, pair_matrix, sdp_dual, two_layer_weights,
)

__all__ = ["Certificate", "NotTwoLayerError", "SolverError", "certified_accuracy", "certify_box", "certify_flow",
           "eigen_value_bound", "optimise_dual", "pair_matrix", "sdp_dual", "two_layer_weights", "warp_intervals"]
