"""Certified training: the TF relaxation against the float64 bound, and the defence in RobustModel."""
import json

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_attdef import RobustModel, certify, defenses, models
from keras_attdef.certify import dual as dual_bounds, relaxation


def _net(rng, d=12, m=6, k=3):
    return rng.normal(size=(d, m)), rng.normal(size=(m, k))


def test_operator_matches_the_dense_block_and_surrogate_is_a_lower_estimate():
    rng = np.random.default_rng(0)
    kernel1, kernel2 = _net(rng)
    radius = rng.uniform(0.1, 0.5, 12)
    pairs = relaxation.class_pairs(3)
    op = relaxation.PairOperator(tf.constant(kernel1), tf.constant(kernel2), tf.constant(radius), pairs)
    y = rng.normal(size=(len(pairs), 12))
    x = rng.normal(size=(len(pairs), 7))
    for n, (i, j) in enumerate(pairs):
        block = dual_bounds.pair_block(kernel1.T, kernel2[:, j] - kernel2[:, i], radius)
        np.testing.assert_allclose(op.apply(tf.constant(y)).numpy()[n], block @ y[n], atol=1e-10)
        np.testing.assert_allclose(op.apply_transpose(tf.constant(x)).numpy()[n], block.T @ x[n], atol=1e-10)
    c1 = tf.constant(rng.uniform(0.5, 2, (len(pairs), 7)))
    c2 = tf.constant(rng.uniform(0.5, 2, (len(pairs), 12)))
    xs, ys = relaxation.top_singular_vectors(op, c1, c2, tf.constant(y), 200)
    surrogate = relaxation.pair_bound_surrogate(op, c1, c2, xs, ys).numpy()
    for n, (i, j) in enumerate(pairs):
        block = dual_bounds.pair_block(kernel1.T, kernel2[:, j] - kernel2[:, i], radius)
        sound = dual_bounds.bipartite_bound(block, c1.numpy()[n], c2.numpy()[n])
        assert surrogate[n] <= sound + 1e-9 and surrogate[n] >= 0.999 * sound  # converged power iteration


def test_surrogate_has_gradients_for_weights_and_duals():
    rng = np.random.default_rng(1)
    kernel1, kernel2 = (tf.Variable(k) for k in _net(rng))
    c1, c2 = tf.Variable(tf.ones((6, 7), tf.float64)), tf.Variable(tf.ones((6, 12), tf.float64))
    with tf.GradientTape() as tape:
        op = relaxation.PairOperator(kernel1, kernel2, tf.constant(0.2, tf.float64))
        x, y = relaxation.top_singular_vectors(op, c1, c2, tf.ones((6, 12), tf.float64), 20)
        total = tf.reduce_sum(relaxation.pair_bound_surrogate(op, c1, c2, x, y))
    grads = tape.gradient(total, [kernel1, kernel2, c1, c2])
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_certified_training_trains_logs_and_round_trips(tmp_path, mnist_train):
    x, y = mnist_train[0][:1024], mnist_train[1][:1024]
    keras.utils.set_random_seed(0)
    robust = RobustModel(models.two_layer_dense(32), defenses.certified(0.02, warmup_steps=8), eval_attack=None)
    robust.compile(optimizer="adam", metrics=["accuracy"])
    history = robust.fit(x, y, batch_size=128, epochs=2, verbose=0)
    assert {"certified_loss", "bound_loss", "accuracy"} <= set(history.history)
    assert history.history["certified_loss"][-1] < history.history["certified_loss"][0] * 1.5
    duals = robust.defense.duals.log_c1.numpy()
    assert np.abs(duals).max() > 0  # the duals are trained with the network
    path = tmp_path / "certified.keras"
    robust.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.defense.duals.log_c1.numpy(), duals)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), robust.predict(x[:8], verbose=0), atol=1e-6)
    assert loaded.defense.get_config()["radius"] == 0.02


def test_certified_training_beats_plain_on_the_certificate(mnist_train, mnist_test):
    """Same net and data, Linf eps 0.02: training with the certificate certifies more test digits."""
    x, y = mnist_train
    xt, yt = mnist_test
    certified = {}
    for name, defense in (("plain", defenses.plain()), ("certified", defenses.certified(0.02, warmup_steps=47))):
        keras.utils.set_random_seed(0)
        robust = RobustModel(models.two_layer_dense(32), defense, eval_attack=None)
        robust.compile(optimizer="adam")
        robust.fit(x, y, batch_size=128, epochs=2, verbose=0)
        table = certify.pair_bounds(robust.base_model, 0.02, iterations=10)
        logits = robust.predict(xt, verbose=0)
        certified[name] = certify.certified_by_table(logits, yt, table).mean()
    assert certified["certified"] > certified["plain"] + 0.1, certified


@pytest.mark.parametrize("mode", ["xla", "mirrored"])
def test_certified_training_under_xla_and_mirrored(mode, mirrored_strategy):
    rng = np.random.default_rng(2)
    x, y = rng.random((64, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 64)
    strategy = mirrored_strategy if mode == "mirrored" else None
    with (strategy or tf.distribute.get_strategy()).scope():
        robust = RobustModel(models.two_layer_dense(16), defenses.certified(0.05), eval_attack=None)
        robust.compile(optimizer="adam", jit_compile=mode == "xla")
    logs = robust.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert np.isfinite(logs["certified_loss"][0]) and np.isfinite(logs["loss"][0])


def test_cli_certify_runs_resumes_and_never_fools_certified_points(tmp_path, capsys):
    from keras_attdef import cli

    args = ["certify", "--hidden", "8", "--epochs", "1", "--budgets", "0.1,100", "--certify-size", "4",
            "--attack-size", "6", "--stadv-steps", "10", "--out", str(tmp_path)]
    cli.main(args)
    first = capsys.readouterr().out
    assert "| certified 784-8-10 |" in first and "must be 0" in first
    results = json.loads((tmp_path / "results.json").read_text())
    assert all(not any(m) for m in (results["plain/certified@100"]["mask"], results["certified/certified@100"]["mask"]))
    for net in ("plain", "certified"):
        fooled, certified = results[f"{net}/stadv@0.1"]["fooled"], results[f"{net}/certified@0.1"]["mask"]
        assert not any(f and c for f, c in zip(fooled, certified))
    cli.main(args)  # every stage is reused
    second = capsys.readouterr().out
    assert "[resume]" in second and first.splitlines()[-4:] == second.splitlines()[-4:]
