"""The two-layer certificate: soundness against brute force (boxes and flows), SDP agreement, errors."""
import itertools

import numpy as np
import pytest

import keras
from keras_attdef import certify, models
from keras_attdef.attacks.spatial import stadv
from keras_attdef.flow import warp


def _random_net(rng, d, m, k):
    return rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k)


def test_box_bound_is_sound_on_1000_random_tiny_networks():
    rng = np.random.default_rng(0)
    violations = 0
    for _ in range(1000):
        w, b, v, c = net = _random_net(rng, 3, 4, 3)
        low = rng.uniform(-1, 1, 3)
        high = low + rng.uniform(0, 0.6, 3) * (rng.random(3) > 0.2)
        label = int(rng.integers(3))
        cert = certify.certify_box(net, low, high, label)
        grid = np.array(list(itertools.product(*[np.linspace(lo, hi, 9) for lo, hi in zip(low, high)])))
        logits = np.maximum(grid @ w.T + b, 0) @ v.T + c
        violations += sum((logits[:, j] - logits[:, label]).max() > upper for j, upper in cert.upper.items())
    assert violations == 0


def test_flow_certificate_is_sound_against_brute_force_flows():
    """Tiny 3x3 images, tiny nets: the bound covers every flow on a fine grid of the per-pixel box."""
    rng = np.random.default_rng(1)
    steps = np.linspace(-1, 1, 5)
    violations = 0
    for trial in range(25):
        inputs = keras.Input((3, 3, 1))
        hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
        model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
        x = rng.random((3, 3, 1))
        rho = rng.uniform(0.1, 1.5)
        label = int(np.argmax(model(x[None]).numpy()))
        cert = certify.certify_flow(model, x, label, rho=rho)
        # every pixel's flow independently on the grid: sample 3000 combinations
        flows = rng.choice(steps, size=(3000, 3, 3, 2)) * rho
        logits = model.predict(warp(np.repeat(x[None], 3000, 0).astype(np.float32), flows.astype(np.float32)),
                               verbose=0)
        for j, upper in cert.upper.items():
            violations += int((logits[:, j] - logits[:, label]).max() > upper + 1e-4)
    assert violations == 0


def test_sdp_and_eigenvalue_bounds_agree_and_bound_the_sdp():
    rng = np.random.default_rng(2)
    for _ in range(3):
        p = certify.pair_matrix(rng.normal(size=(8, 6)), rng.normal(size=8), rng.uniform(0.05, 1, 6))
        dual, solver_value = certify.sdp_dual(p)
        sdp = certify.eigen_value_bound(p, dual)
        eigen = certify.eigen_value_bound(p, certify.optimise_dual(p))
        assert sdp >= solver_value - 1e-3 * abs(solver_value)  # the recomputed bound is not below the optimum
        assert sdp <= eigen <= 1.05 * sdp


def test_no_stadv_success_on_certified_points(trained_dense, mnist_test):
    net = trained_dense
    x, y = mnist_test[0][:4], mnist_test[1][:4]
    budget = 0.2
    certified = np.array([certify.certify_flow(net, img, int(lbl), budget=budget).certified
                          for img, lbl in zip(x, y)])
    assert certified.any()
    result = stadv(net, x[certified], y[certified], budget=budget, steps=100, search_steps=3)
    assert not result.success.any()


def test_clear_errors():
    with pytest.raises(certify.NotTwoLayerError, match="Dense\\(relu\\)"):
        certify.certify_flow(models.lenet(), np.zeros((28, 28, 1)), 0, rho=0.1)
    net = models.two_layer_dense(8, input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match="exactly one"):
        certify.certify_flow(net, np.zeros((4, 4, 1)), 0)
    with pytest.raises(ValueError, match="do not fit"):
        certify.certify_box(net, np.zeros(3), np.ones(3), 0)
    with pytest.raises(ValueError, match="exceed the image"):
        certify.certify_flow(net, np.zeros((4, 4, 1)), 0, rho=50.0)
    with pytest.raises(certify.SolverError, match="status"):
        certify.sdp_dual(certify.pair_matrix(np.ones((3, 2)), np.ones(3), np.ones(2)), max_iters=1)
