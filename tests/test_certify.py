"""The two-layer certificate: soundness against brute force (boxes and flows), SDP agreement, errors."""
import itertools

import numpy as np
import pytest

from keras_attdef import certify, defenses, models
from keras_attdef.certify import dual as dual_bounds, sdp as sdp_solver
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
        cert = certify.certify_box(net, low, high, label, iterations=10, clip_min=-1.0, clip_max=1.6)
        grid = np.array(list(itertools.product(*[np.linspace(lo, hi, 9) for lo, hi in zip(low, high)])))
        logits = np.maximum(grid @ w.T + b, 0) @ v.T + c
        violations += sum((logits[:, j] - logits[:, label]).max() > upper for j, upper in cert.upper.items())
    assert violations == 0


def test_flow_certificate_is_sound_on_1000_random_tiny_networks():
    """3x3 images, 9-4-3 nets, flow boxes up to 1.5 px: the bound covers every sampled flow of the grid.

    10 groups of 100 networks share a flow box, so the warps run batched; per network the certificate
    is `certify_flow`'s: exact warp intervals, clipped to [0, 1], then `certify_box`.
    """
    rng = np.random.default_rng(1)
    steps = np.linspace(-1, 1, 5)
    violations = 0
    for group in range(10):
        rho = rng.uniform(0.1, 1.5)
        images = rng.random((100, 3, 3, 1))
        low, high = certify.warp_intervals(images, rho)
        # each pixel's flow independently on the grid: 300 combinations per network
        flows = rng.choice(steps, size=(100 * 300, 3, 3, 2)) * rho
        warped = warp(np.repeat(images, 300, 0), flows).numpy().reshape(100, 300, -1)
        for t in range(100):
            w, b, v, c = net = _random_net(rng, 9, 4, 3)
            label = int(rng.integers(3))
            cert = certify.certify_box(net, np.clip(low[t], 0, 1), np.clip(high[t], 0, 1), label, iterations=10)
            logits = np.maximum(warped[t] @ w.T + b, 0) @ v.T + c
            violations += sum(int((logits[:, j] - logits[:, label]).max() > upper) for j, upper in cert.upper.items())
    assert violations == 0


def test_relaxation_lower_bound_never_exceeds_the_certificate():
    rng = np.random.default_rng(3)
    for _ in range(100):
        d, m = rng.integers(2, 8, size=2)
        w, v, radius = rng.normal(size=(m, d)), rng.normal(size=m), rng.uniform(0, 1, d)
        assert dual_bounds.relaxation_lower_bound(dual_bounds.pair_block(w, v, radius)) <= certify.pair_bound(
            w, v, radius)


def test_sdp_and_eigenvalue_bounds_agree_and_bound_the_sdp():
    rng = np.random.default_rng(2)
    for _ in range(3):
        w, v, radius = rng.normal(size=(8, 6)), rng.normal(size=8), rng.uniform(0.05, 1, 6)
        p = dual_bounds.pair_matrix(w, v, radius)
        dual, solver_value, primal = sdp_solver.sdp_dual(p)
        sdp = dual_bounds.eigen_value_bound(p, dual)
        lower = sdp_solver.sdp_lower_bound(p, primal, rows=9)  # pair_matrix's first block: 1 + 8 hidden
        assert lower >= sdp_solver.sdp_lower_bound(p, primal) - 1e-9  # block ascent never loses value
        eigen = certify.pair_bound(w, v, radius, "eigen")
        assert sdp >= solver_value - 1e-3 * abs(solver_value)  # the recomputed bound is not below the optimum
        # the feasible primal brackets the optimum from below, and tightly at a tight solver tolerance
        assert lower <= sdp and lower <= eigen and lower >= (1 - 1e-3) * solver_value
        # a crude primal (a sign vector's outer product) is feasible, so also a lower bound
        signs = np.sign(rng.normal(size=p.shape[0]))
        assert sdp_solver.sdp_lower_bound(p, 3.0 * np.outer(signs, signs)) == pytest.approx(signs @ p @ signs)
        # and block ascent from a random rank-5 start reaches the optimum (within SCS's tolerance)
        start = rng.normal(size=(p.shape[0], 5))
        assert sdp_solver.sdp_lower_bound(p, start @ start.T, rows=9) == pytest.approx(solver_value, rel=1e-3)
        assert sdp * (1 - 1e-4) <= eigen <= 1.05 * sdp
        assert sdp <= dual_bounds.eigen_value_bound(p, dual_bounds.optimise_dual(p)) <= 1.05 * sdp


def test_pair_bounds_table_certifies_like_certify_box():
    rng = np.random.default_rng(4)
    net = _random_net(rng, 6, 5, 3)
    table = certify.pair_bounds(net, 0.05, iterations=30)
    x = rng.random((20, 6))
    w, b, v, c = net
    logits = np.maximum(x @ w.T + b, 0) @ v.T + c
    labels = logits.argmax(-1)
    by_table = certify.certified_by_table(logits, labels, table)
    by_box = [certify.certify_box(net, xi - 0.05, xi + 0.05, int(li), iterations=30).certified
              for xi, li in zip(x, labels)]
    # the same bound up to the optimiser's tolerance: at most a borderline disagreement
    assert np.mean(by_table == np.array(by_box)) >= 0.9
    assert by_table.any()
    assert np.all(np.diag(table) == 0) and np.all(table[~np.eye(3, dtype=bool)] >= 0)


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
    with pytest.raises(ValueError, match=">= 0"):
        certify.certify_flow(net, np.zeros((4, 4, 1)), 0, budget=-1.0)
    with pytest.raises(ValueError, match="64x64"):
        certify.certify_flow(models.two_layer_dense(4, input_shape=(80, 80, 1)), np.zeros((80, 80, 1)), 0,
                             budget=1.0)
    with pytest.raises(certify.NotTwoLayerError):
        defenses.certified(0.1).attach(models.lenet())
    with pytest.raises(certify.SolverError, match="status"):
        sdp_solver.sdp_dual(dual_bounds.pair_matrix(np.ones((3, 2)), np.ones(3), np.ones(2)), max_iters=1)
