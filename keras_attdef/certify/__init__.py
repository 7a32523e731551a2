"""Certificates for two-layer ReLU networks against flow-field (spatial) attacks and pixel boxes.

`two_layer`: the sound float64 bounds (bipartite eigenvalue dual, SCS SDP dual re-checked) and the
certifying functions; `relaxation`: the same bound in TensorFlow, batched over class pairs and
differentiable, for certified training; `intervals`: exact ranges of the warp under a flow box.
"""
from keras_attdef.certify.intervals import warp_intervals
from keras_attdef.certify.two_layer import (
    Certificate, NotTwoLayerError, SolverError, bipartite_bound, certified_accuracy, certified_by_table, certify_box,
    certify_flow, certify_images, eigen_value_bound, optimise_bipartite, optimise_dual, pair_block, pair_bound,
    pair_bounds, pair_matrix, sdp_dual, sdp_lower_bound, two_layer_weights,
)

__all__ = ["Certificate", "NotTwoLayerError", "SolverError", "bipartite_bound", "certified_accuracy",
           "certified_by_table", "certify_box", "certify_flow", "certify_images", "eigen_value_bound",
           "optimise_bipartite", "optimise_dual", "pair_block", "pair_bound", "pair_bounds", "pair_matrix",
           "sdp_dual", "sdp_lower_bound", "two_layer_weights", "warp_intervals"]
