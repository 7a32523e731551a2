"""Flow warp, flow loss, exact warp intervals (soundness against brute force) and the stAdv attack."""
import numpy as np
import pytest

from keras_attdef.attacks.spatial import stadv
from keras_attdef.certify import warp_intervals
from keras_attdef.flow import difference_operator, ellipsoid_box, flow_loss, warp


def test_zero_flow_is_identity_and_integer_flow_shifts():
    x = np.random.default_rng(0).random((2, 5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(warp(x, np.zeros((2, 5, 6, 2))).numpy(), x, atol=1e-6)
    down = np.zeros((2, 5, 6, 2), np.float32)
    down[..., 0] = 1.0
    shifted = warp(x, down).numpy()
    np.testing.assert_allclose(shifted[:, :-1], x[:, 1:], atol=1e-6)
    assert np.all(shifted[:, -1] == 0)  # outside the image is zero


def test_warp_interval_bounds_are_sound_against_brute_force():
    """>= 1000 random tiny images and boxes; every flow on a fine grid of each box stays in the bounds."""
    rng = np.random.default_rng(0)
    images = rng.random((1000, 4, 4, 1))
    violations = 0
    grid = np.linspace(-1.0, 1.0, 9)
    for start in range(0, 1000, 250):
        x = images[start:start + 250]
        rho = rng.uniform(0, 2.5, (4, 4)) if start % 500 else rng.uniform(0, 0.95)
        low, high = warp_intervals(x, rho)
        box = np.broadcast_to(rho, (4, 4))[..., None]
        for du in grid:
            for dv in grid:
                flow = np.concatenate([du * box, dv * box], -1)[None].repeat(len(x), 0)
                values = warp(x, flow).numpy()
                violations += int(np.sum(values < low) + np.sum(values > high))
    assert violations == 0


def test_warp_intervals_are_attained_and_errors():
    x = np.random.default_rng(1).random((3, 4, 4, 1))
    low, high = warp_intervals(x, 0.0)
    # attained up to the margins: 1e-6 for float64, and the float32 slacks (coordinate ~7e-7 px here, value ~4e-7)
    assert np.all(low <= x - 1e-6) and np.all(low >= x - 3e-6)
    assert np.all(high >= x + 1e-6) and np.all(high <= x + 3e-6)
    with pytest.raises(ValueError, match=">= 0"):
        warp_intervals(x, -0.1)
    with pytest.raises(ValueError, match="exceed the image"):
        warp_intervals(x, 10.0)


def test_flow_loss_bounds_the_ellipsoid_norm():
    rng = np.random.default_rng(2)
    n = difference_operator(6, 6)
    for _ in range(20):
        flow = rng.normal(0, 0.5, (1, 6, 6, 2)).astype(np.float32)
        norm = np.sqrt(np.sum((n @ flow[0, ..., 0].reshape(-1)) ** 2 + (n @ flow[0, ..., 1].reshape(-1)) ** 2))
        assert float(flow_loss(flow, epsilon=0.0)[0]) >= norm - 1e-4
    box = ellipsoid_box(6, 6, 1.0)
    assert box.shape == (6, 6) and np.all(box > 0) and box[0, 0] < box[3, 3]


def test_stadv_fools_a_plain_dense_net(trained_dense, mnist_test):
    net = trained_dense
    x, y = mnist_test[0][:40], mnist_test[1][:40]
    result = stadv(net, x, y, budget=None, steps=200, search_steps=5)
    assert result.success.mean() > 0.8
    fooled = np.argmax(net.predict(result.x_adv, verbose=0), -1) != y
    assert np.all(fooled[result.success])
    budgeted = stadv(net, x, y, budget=30.0, steps=100, search_steps=3)
    assert np.all(budgeted.distance[budgeted.success] <= 30.0)
    with pytest.raises(ValueError, match="budget"):
        stadv(net, x, y, budget=-1.0)
