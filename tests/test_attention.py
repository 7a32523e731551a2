"""Grad-CAM against tf-keras-vis, second-order gradients against finite differences, areas and masks."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_attdef import attention, models


def test_grad_cam_matches_tf_keras_vis(trained_lenet, mnist_test):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    x, y = mnist_test[0][:16], mnist_test[1][:16]
    ours = attention.grad_cam(trained_lenet, x, "conv2", target=y).numpy()
    theirs = np.asarray(Gradcam(trained_lenet, clone=True)(CategoricalScore(list(y)), x, penultimate_layer="conv2",
                                                           expand_cam=False, normalize_cam=False))

    def minmax(a):
        low = a.min(axis=(1, 2), keepdims=True)
        return (a - low) / (a.max(axis=(1, 2), keepdims=True) - low)

    assert ours.shape == theirs.shape == (16, 14, 14)
    np.testing.assert_allclose(minmax(ours), minmax(theirs), atol=1e-4)


def test_grad_cam_shapes_resize_and_logits_in_one_pass(trained_lenet, mnist_test):
    x = mnist_test[0][:4]
    maps, logits = attention.grad_cam(trained_lenet, x, "conv2", resize=True, normalize="max", return_logits=True)
    peaks = maps.numpy().max(axis=(1, 2))
    assert maps.shape == (4, 28, 28) and np.all(np.isclose(peaks, 1.0, atol=1e-5) | (peaks == 0))
    assert (peaks > 0).sum() >= 3
    np.testing.assert_allclose(logits.numpy(), trained_lenet(x).numpy(), atol=1e-5)


def _tiny_float64_model():
    inputs = keras.Input((6, 6, 1), dtype="float64")
    h = keras.layers.Conv2D(3, 3, activation="tanh", dtype="float64", name="conv")(inputs)
    h = keras.layers.Flatten(dtype="float64")(h)
    outputs = keras.layers.Dense(4, dtype="float64")(h)
    return keras.Model(inputs, outputs)


def test_grad_cam_loss_has_second_order_gradients_matching_finite_differences():
    keras.utils.set_random_seed(0)
    model = _tiny_float64_model()
    x = tf.constant(np.random.default_rng(0).random((3, 6, 6, 1)))
    y = tf.constant([0, 1, 2])

    def loss():
        return tf.reduce_sum(tf.square(attention.grad_cam(model, x, "conv", target=y)))

    kernel = model.get_layer("conv").kernel
    with tf.GradientTape() as tape:
        value = loss()
    grad = tape.gradient(value, kernel)
    assert grad is not None
    rng = np.random.default_rng(1)
    original = kernel.numpy()
    for _ in range(5):
        index = tuple(rng.integers(0, s) for s in original.shape)
        h = 1e-6
        bumped = original.copy()
        bumped[index] += h
        kernel.assign(bumped)
        up = float(loss())
        bumped[index] -= 2 * h
        kernel.assign(bumped)
        down = float(loss())
        kernel.assign(original)
        np.testing.assert_allclose(grad.numpy()[index], (up - down) / (2 * h), rtol=1e-4, atol=1e-8)


def test_grad_cam_errors_name_the_layers():
    with pytest.raises(ValueError, match="has no layer named 'conv9'.*conv2"):
        attention.grad_cam(models.lenet(), np.zeros((1, 28, 28, 1), np.float32), "conv9")
    with pytest.raises(ValueError, match="4-D"):
        attention.grad_cam(models.lenet(), np.zeros((1, 28, 28, 1), np.float32), "fc3")


def test_attention_area_top_k_iou_and_mask():
    g = tf.constant(np.arange(16, dtype=np.float32).reshape(1, 4, 4))
    area = attention.attention_area(g)
    assert area.numpy().sum() == 8  # values above the mean 7.5
    assert attention.attention_area(g, kappa=13.0).numpy().sum() == 2
    top = attention.top_k_cells(g, 3)
    assert top.numpy().sum() == 3 and top.numpy()[0, 3, 3] == 1
    assert float(attention.iou(area, top)[0]) == pytest.approx(3 / 8)
    assert float(attention.iou(tf.zeros((1, 4, 4)), tf.zeros((1, 4, 4)))[0]) == 1.0
    x = tf.ones((1, 8, 8, 1))
    masked = attention.hard_mask(x, area).numpy()
    assert masked.sum() == 32 and masked[0, 0, 0, 0] == 1 and masked[0, 7, 7, 0] == 0


def test_hard_mask_passes_gradient_to_the_image_only():
    x = tf.Variable(tf.ones((1, 4, 4, 1)))
    maps = tf.Variable(tf.constant([[[0.0, 1.0], [2.0, 3.0]]]))
    with tf.GradientTape(persistent=True) as tape:
        out = tf.reduce_sum(attention.hard_mask(x, attention.attention_area(maps)))
    assert tape.gradient(out, maps) is None
    np.testing.assert_array_equal(tape.gradient(out, x).numpy().reshape(4, 4)[:2], np.ones((2, 4)))


def test_activation_attention_is_unit_norm_and_batched():
    feats = tf.random.normal((3, 5, 5, 7))
    q = attention.activation_attention(feats)
    assert q.shape == (3, 25)
    np.testing.assert_allclose(np.linalg.norm(q.numpy(), axis=1), 1.0, atol=1e-5)
    expected = np.mean(feats.numpy() ** 2, axis=-1).reshape(3, -1)
    np.testing.assert_allclose(q.numpy(), expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    assert len(attention.activation_attention([feats, feats])) == 2


def test_gradient_x_activation_maps_carry_the_target_logit():
    # conv features -> linear head without bias: the per-cell maps before ReLU sum to the target logit exactly,
    # so a positive logit cannot have an empty map (Grad-CAM's spatially averaged weights can)
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    logits = keras.layers.Dense(3, use_bias=False)(keras.layers.Flatten()(features))
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 3
    maps = attention.grad_cam(model, x, "conv", target=y, method="grad_x_activation").numpy()
    target_logits = model.predict(x, verbose=0)[np.arange(16), y]
    assert np.all(maps.sum(axis=(1, 2)) >= target_logits - 1e-4)
    assert np.all(maps.reshape(16, -1).max(axis=1)[target_logits > 0] > 0)
    with pytest.raises(ValueError, match="attention method"):
        attention.grad_cam(model, x, "conv", method="saliency")


def test_integrated_gradients_maps_add_up_to_the_logits_rise_and_train(monkeypatch):
    # completeness: the signed cells sum to score(x) - score(black image), up to the trapezoid rule's error
    from keras_attdef.attention import gradcam

    keras.utils.set_random_seed(0)
    model = _tiny_float64_model()
    x = tf.constant(np.random.default_rng(0).random((3, 6, 6, 1)))
    y = np.array([0, 1, 2])
    rise = (model(x).numpy() - model(tf.zeros_like(x)).numpy())[np.arange(3), y]
    monkeypatch.setattr(gradcam, "IG_STEPS", 200)
    fine, logits = attention.grad_cam(model, x, "conv", target=y, method="integrated_gradients",
                                      activation="none", return_logits=True)
    np.testing.assert_allclose(fine.numpy().sum(axis=(1, 2)), rise, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), model(x).numpy(), atol=1e-10)
    predicted = attention.grad_cam(model, x, "conv", method="integrated_gradients", activation="none")
    by_label = attention.grad_cam(model, x, "conv", target=np.argmax(logits, axis=-1),
                                  method="integrated_gradients", activation="none")
    np.testing.assert_allclose(predicted.numpy(), by_label.numpy())
    monkeypatch.setattr(gradcam, "IG_STEPS", 4)
    with tf.GradientTape() as tape:  # a loss on the maps reaches the weights (a training term can use it)
        coarse = attention.grad_cam(model, x, "conv", target=y, method="integrated_gradients", activation="none")
        loss = tf.reduce_sum(tf.square(coarse))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, model.get_layer("conv").kernel)))) > 0
    assert np.abs(coarse.numpy().sum(axis=(1, 2)) - rise).max() < 0.2 * np.abs(rise).max()
