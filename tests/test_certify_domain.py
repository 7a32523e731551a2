"""Certificates refuse inputs outside their domain, and cover the float32 rounding of the warp and the net."""
import numpy as np
import pytest
import tensorflow as tf

from keras_attdef import certify, models
from keras_attdef.certify.domain import UNIT_ROUNDOFF, network_slack, warp_slack
from keras_attdef.flow import warp


@pytest.fixture(scope="module")
def small_net():
    return models.two_layer_dense(8, input_shape=(28, 28, 1))


@pytest.mark.parametrize("kind", ["0-255", "standardised", "nan", "shape"])
def test_every_entry_point_refuses_inputs_outside_the_domain(small_net, mnist_test, kind):
    x, y = mnist_test[0][:3].astype(np.float64), mnist_test[1][:3]
    bad = {"0-255": x * 255, "standardised": (x - 0.1307) / 0.3081,
           "nan": np.where(x > 0.5, np.nan, x), "shape": x[:, :27]}[kind]
    match = {"0-255": "divide by 255", "standardised": "0.3081", "nan": "NaN", "shape": "shape"}[kind]
    with pytest.raises(ValueError, match=match):
        certify.certify_images(small_net, bad, y, budget=0.2, progress=False)
    with pytest.raises(ValueError, match=match if kind != "shape" else "input"):
        certify.certify_flow(small_net, bad[0], int(y[0]), budget=0.2)
    with pytest.raises(ValueError, match=match if kind != "shape" else "values"):
        certify.table_slack(small_net, bad, 0.1)
    if kind in ("0-255", "standardised"):
        with pytest.raises(ValueError, match="clip_min"):
            certify.certify_box(small_net, bad[0].reshape(-1) - 0.1, bad[0].reshape(-1) + 0.1, int(y[0]))


def test_another_range_is_accepted_when_named(small_net, mnist_test):
    x, y = mnist_test[0][:1].astype(np.float64), mnist_test[1][:1]
    scaled = certify.certify_flow(small_net, x[0] * 255, int(y[0]), budget=0.2, clip_min=0.0, clip_max=255.0)
    assert set(scaled.upper) == set(range(10)) - {int(y[0])}
    with pytest.raises(ValueError, match="labels"):
        certify.certify_images(small_net, x, [10], budget=0.2, progress=False)


def test_values_a_few_ulps_outside_are_rounding_not_errors(small_net, mnist_test):
    x = mnist_test[0][0].astype(np.float64)
    nudged = np.where(x >= 1.0, 1.0 + 2e-7, np.where(x <= 0.0, -2e-7, x))
    certify.certify_flow(small_net, nudged, int(mnist_test[1][0]), budget=0.2)


def test_float32_warp_stays_inside_the_intervals_over_ten_million_values(mnist_test):
    """Flows sampled inside the box (corners, edges and interior; every row and column), warped in float32."""
    rng = np.random.default_rng(0)
    images = mnist_test[0][:8]
    total, outside, worst = 0, 0, 0.0
    for rho in (0.12, 0.7, 1.6):
        low, high = certify.warp_intervals(images.astype(np.float64), rho)
        batch = np.repeat(images, 64, axis=0)  # 512 warps per box: 401k values each
        for _ in range(9):
            flow = rng.uniform(-rho, rho, size=(len(batch), 28, 28, 2))
            corners = rng.random(flow.shape) < 0.3  # the box's faces, where the extremes sit
            flow = np.where(corners, np.sign(flow) * rho, flow).astype(np.float32)
            flow = np.clip(flow, -np.float32(rho), np.float32(rho))  # in the box after rounding to float32
            warped = warp(tf.constant(batch), tf.constant(flow)).numpy().astype(np.float64)
            lows, highs = np.repeat(low, 64, axis=0), np.repeat(high, 64, axis=0)
            below, above = lows - warped, warped - highs
            outside += int(np.sum(below > 0) + np.sum(above > 0))
            worst = max(worst, float(below.max()), float(above.max()))
            total += warped.size
    assert total >= 10_000_000
    assert outside == 0, (outside, worst)


def test_warp_slack_is_the_derived_bound():
    coordinate, value = warp_slack(28, 28, 0.5)
    assert coordinate == pytest.approx(2 * UNIT_ROUNDOFF * 30.5)
    assert 7 * UNIT_ROUNDOFF < value < 8 * UNIT_ROUNDOFF


def test_network_slack_bounds_the_float32_error_of_the_logits(mnist_test):
    net = models.two_layer_dense(64, input_shape=(28, 28, 1))
    weights = certify.two_layer_weights(net)
    w, b, v, c = weights
    x = mnist_test[0][:64].reshape(64, -1).astype(np.float64)
    exact = np.maximum(x @ w.T + b, 0) @ v.T + c
    computed = net.predict(x.reshape(-1, 28, 28, 1).astype(np.float32), verbose=0).astype(np.float64)
    slack = np.stack([network_slack(weights, image, image) for image in x])
    assert np.all(np.abs(computed - exact) <= slack)
    assert slack.max() < 1e-2  # a bound, but not a useless one
