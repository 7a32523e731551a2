"""Certificates for two-layer ReLU networks against flow-field (spatial) attacks, pixel boxes and Linf balls.

Modules, one concern each: `network` (reading `(W, b, V, c)` off a Keras model), `intervals` (exact
ranges of the warp under a flow box), `dual` (the eigenvalue / SDP-dual bound of one class pair),
`sdp` (the exact SDP with SCS, bracketed soundly), `domain` (valid inputs, and the float32 rounding
slacks that make every certificate hold for float32 execution), `certificate` (certifying boxes, flows and images),
`relaxation` (the same bound in TensorFlow, batched and differentiable, for certified training).

Example:

>>> import numpy as np
>>> from keras_attdef import certify, models
>>> net = models.two_layer_dense(8, input_shape=(5, 5, 1))
>>> certificate = certify.certify_flow(net, np.full((5, 5, 1), 0.5), label=3, budget=0.1)
>>> sorted(certificate.upper) == [0, 1, 2, 4, 5, 6, 7, 8, 9]   # a bound per other class
True
"""
from keras_attdef.certify.certificate import (
    Certificate, certified_accuracy, certified_by_table, certify_box, certify_flow, certify_images, pair_bounds,
    table_slack,
)
from keras_attdef.certify.dual import pair_bound
from keras_attdef.certify.intervals import warp_intervals
from keras_attdef.certify.network import NotTwoLayerError, two_layer_weights
from keras_attdef.certify.sdp import SolverError

__all__ = ["Certificate", "NotTwoLayerError", "SolverError", "certified_accuracy", "certified_by_table",
           "certify_box", "certify_flow", "certify_images", "pair_bound", "pair_bounds", "table_slack",
           "two_layer_weights", "warp_intervals"]
