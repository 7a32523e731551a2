"""AAD, AT+ALP and ATAT in RobustModel (XLA, MirroredStrategy, saving), A3 attacks and the analyses."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_attdef import AttackSpec, RobustModel, analysis, attacks, defenses, models
from keras_attdef.defenses import PRESETS

# Every preset for any classifier (certified training has its own module), under XLA and a strategy.
LENET_PRESETS = sorted(name for name, preset in PRESETS.items() if preset.model is None)


@pytest.mark.parametrize("name", LENET_PRESETS)
def test_every_preset_trains_with_xla_under_mirrored_strategy(name, trained_lenet, mnist_train, mnist_test,
                                                              mirrored_strategy):
    # One run per preset covers both: the attack and the loss traced by XLA (the inner-function form a
    # strategy needs) and every term's per-replica scaling. Whole-step XLA without a strategy is checked
    # step for step in test_robust_model.py.
    x, y = mnist_train[0][:128], mnist_train[1][:128]
    with mirrored_strategy.scope():  # a teacher XLA reads on every replica is built inside the scope
        teacher = keras.models.clone_model(trained_lenet)
        teacher.set_weights(trained_lenet.get_weights())
        defense = PRESETS[name].from_options(eps=0.3, steps=2, step_size=0.15, teacher=teacher)
        robust = RobustModel(models.lenet(), defense=defense)
        robust.compile(optimizer="adam", metrics=["accuracy"], jit_compile=True)
    assert robust._inner_jit
    logs = robust.fit(x, y, batch_size=64, epochs=1, verbose=0,
                      validation_data=(mnist_test[0][:64], mnist_test[1][:64])).history
    expected = ({f"{term}_loss" for term in defense.term_names} | set(defense.metric_names)
                | {"loss", "accuracy", "val_loss", "val_accuracy"})
    if defense.attack is not None:
        expected |= {"adv_accuracy", "val_adv_accuracy"}
    assert expected <= set(logs) and not any(f"val_{m}" in logs for m in defense.metric_names), logs
    assert all(np.isfinite(v[-1]) for v in logs.values())
    for name in defense.metric_names:  # logged shares, not losses
        assert 0.0 <= logs[name][-1] <= 1.0


def test_a_teacher_built_outside_the_strategy_is_a_clear_error_under_xla(trained_lenet, mirrored_strategy):
    with mirrored_strategy.scope():
        robust = RobustModel(models.lenet(), defense=defenses.atat(trained_lenet, steps=1))
        with pytest.raises(ValueError, match="inside `with strategy.scope"):
            robust.compile(optimizer="adam", jit_compile=True)
        robust.compile(optimizer="adam")  # without XLA the replicas read it through the strategy


def test_trades_warns_about_a_few_step_kl_attack():
    import warnings

    # PGD-3 of 0.25 from TRADES's near-x start overfitted catastrophically (benchmarks/RESULTS.md)
    with pytest.warns(UserWarning, match="overfitted catastrophically"):
        PRESETS["trades"].from_options(eps=0.3, steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        defenses.trades(steps=7)
        defenses.trades()  # the paper's 40 steps


def test_aad_terms_have_the_papers_signs(mnist_train):
    x, y = tf.constant(mnist_train[0][:32]), tf.constant(mnist_train[1][:32])
    defense = defenses.aad()
    net = models.lenet(dropout=0)
    adv = defense.perturb(net, x, y)
    assert len(adv) == 2
    assert np.abs(adv[1].numpy() - x.numpy()).max() <= 0.3 + 1e-6  # two StepLL rounds of 0.15
    out = defense.loss_terms(net, x, y, adv)
    assert float(out.terms["rect"]) <= 0.0 and float(out.terms["pres"]) >= 0.0
    assert out.task_logits.shape[0] == 96 and out.task_weight == 2.0
    np.testing.assert_array_equal(out.task_labels.numpy(), np.tile(y.numpy(), 3))  # labels of x, x_1, x_2
    other = defenses.aad(cam_method="grad_x_activation")
    restored = defenses.get(defenses.serialize(other))
    assert restored.cam_method == "grad_x_activation"
    terms = other.loss_terms(net, x, y, adv).terms
    assert float(terms["rect"]) <= 0.0 and float(terms["pres"]) >= 0.0 and float(terms["pres"]) != float(out.terms["pres"])
    with pytest.raises(ValueError, match="cam_method"):
        defenses.aad(cam_method="saliency")


def test_atat_and_at_alp_terms_follow_their_papers_equations(trained_lenet, mnist_train):
    """ATAT eq. 5-6 and AT+ALP's attention and logit pairing, recomputed in NumPy from per-image maps."""
    from keras_attdef.attention.gradcam import grad_cam
    from keras_attdef.models import last_conv_layer

    x = mnist_train[0][:16]
    y = tf.constant(mnist_train[1][:16])
    adv = np.clip(x + 0.2 * np.sign(np.random.default_rng(0).normal(size=x.shape)), 0, 1).astype(np.float32)
    net = models.lenet(dropout=0)  # no dropout: the defence's training-mode passes equal these
    layer = last_conv_layer(net)

    def flat_map(model, images):
        return grad_cam(model, tf.constant(images), layer, target=y, normalize="max").numpy().reshape(len(images), -1)

    teacher, clean, attacked = flat_map(trained_lenet, x), flat_map(net, x), flat_map(net, adv)
    logits, adv_logits = net(x).numpy(), net(adv).numpy()
    terms = defenses.atat(trained_lenet).loss_terms(net, tf.constant(x), y, tf.constant(adv)).terms
    norm = np.linalg.norm
    np.testing.assert_allclose(float(terms["transfer"]), np.mean(norm(teacher - attacked, axis=1))
                               + np.mean(norm(teacher - clean, axis=1)), rtol=1e-4)
    np.testing.assert_allclose(float(terms["pair"]), np.mean(norm(logits - adv_logits, axis=1)), rtol=1e-4)

    convs = [layer.name for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    features = keras.Model(net.input, [net.get_layer(name).output for name in convs])

    def attention(images):  # mean over channels of A^2, flattened, unit L2 norm per image
        maps = [np.mean(np.asarray(a) ** 2, axis=-1).reshape(len(images), -1) for a in features(images)]
        return [m / norm(m, axis=1, keepdims=True) for m in maps]

    expected = sum(np.mean(norm(q - q_adv, axis=1)) for q, q_adv in zip(attention(x), attention(adv)))
    terms = defenses.at_alp().loss_terms(net, tf.constant(x), y, tf.constant(adv)).terms
    assert len(convs) >= 2
    np.testing.assert_allclose(float(terms["attention"]), expected, rtol=1e-4)
    np.testing.assert_allclose(float(terms["pair"]), np.mean((logits - adv_logits) ** 2), rtol=1e-4)


def test_atat_save_load_keeps_the_teacher(trained_lenet, mnist_train, tmp_path):
    x, y = mnist_train[0][:64], mnist_train[1][:64]
    robust = RobustModel(models.lenet(), defense=defenses.atat(trained_lenet, steps=1, step_size=0.3))
    robust.compile(optimizer="adam")
    robust.fit(x, y, batch_size=64, verbose=0)
    robust.save(tmp_path / "atat.keras")
    loaded = keras.models.load_model(tmp_path / "atat.keras")
    np.testing.assert_allclose(loaded.defense.teacher.predict(x[:8], verbose=0),
                               trained_lenet.predict(x[:8], verbose=0), atol=1e-6)
    assert not loaded.defense.teacher.trainable
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), robust.predict(x[:8], verbose=0), atol=1e-6)


def test_a3_moves_attention_further_than_its_base_attack(trained_lenet, mnist_test):
    """A3 raises the attention deviation it adds; whether that also lowers accuracy is model-dependent
    (see the module doc and docs/results.md), so this checks what A3 optimises."""
    from keras_attdef.attention import grad_cam, iou, top_k_cells

    x, y = mnist_test[0][:256], mnist_test[1][:256]
    base = attacks.iter_ll(trained_lenet, x, eps=0.1, step_size=0.05, rounds=3)
    a3 = attacks.attention_augmented(attacks.iter_ll, sigma=10.0, normalize="max")(
        trained_lenet, x, eps=0.1, step_size=0.05, rounds=3)
    assert np.abs(a3.numpy() - x).max() <= 0.1 + 1e-6

    def attention_iou(x_adv):
        clean = top_k_cells(grad_cam(trained_lenet, x, "conv2", target=y), 10)
        return float(np.mean(iou(clean, top_k_cells(grad_cam(trained_lenet, x_adv, "conv2", target=y), 10))))

    assert attention_iou(a3) < attention_iou(base) - 0.02, (attention_iou(a3), attention_iou(base))
    spec = AttackSpec("a3", base="fgsm", sigma=10.0, eps=0.1)
    assert np.abs(spec(trained_lenet, x[:8], y[:8]).numpy() - x[:8]).max() <= 0.1 + 1e-6


def test_attention_shift_table_and_grid(trained_lenet, mnist_test, tmp_path):
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    shift = analysis.attention_shift(trained_lenet, x, y, AttackSpec("step_ll", eps=0.15), rounds=2)
    table = shift.to_markdown()
    assert "| 5 |" in table and "| 30 |" in table and "| 2 |" in table
    assert 0 < shift.fraction_succeeded < 1 and shift.num_images > 150
    for k in shift.cells:
        for value in (shift.succeeded[k], shift.failed[k]):
            assert 0.0 <= value <= 1.0
    assert shift.rounds[1][0] >= shift.rounds[0][0]  # a second round fools at least as many
    path = analysis.attention_grid(trained_lenet, x, y, AttackSpec("fgsm", eps=0.2), tmp_path / "grid.png",
                                   max_images=3)
    assert path.stat().st_size > 10_000


def test_attention_iou_callback_logs(mnist_train, mnist_test):
    callback = analysis.AttentionIoUCallback(mnist_test[0][:32], mnist_test[1][:32], AttackSpec("fgsm", eps=0.2))
    robust = RobustModel(models.lenet(), defense="plain")
    robust.compile(optimizer="adam")
    history = robust.fit(mnist_train[0][:128], mnist_train[1][:128], epochs=2, verbose=0, callbacks=[callback])
    assert len(callback.history) == 2 and all(0 <= v <= 1 for v in history.history["attention_iou"])


def test_attention_shift_leaves_out_empty_maps_instead_of_reading_them_as_iou_one():
    inputs = keras.Input((28, 28, 1))
    dead = keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer="zeros", name="dead")(inputs)
    merged = keras.layers.Concatenate()([keras.layers.Flatten()(dead), keras.layers.Flatten()(inputs)])
    model = keras.Model(inputs, keras.layers.Dense(10)(merged))  # its Grad-CAM at "dead" is zero everywhere
    x = np.random.default_rng(0).random((32, 28, 28, 1), np.float32)
    y = np.argmax(model.predict(x, verbose=0), -1)  # every image "correctly classified"
    with pytest.warns(RuntimeWarning, match="100.0% of the images have an all-zero Grad-CAM map"):
        shift = analysis.attention_shift(model, x, y, AttackSpec("fgsm", eps=0.3), layer="dead")
    assert shift.empty_maps == 1.0 and shift.num_images == 32
    assert all(np.isnan(shift.succeeded[k]) and np.isnan(shift.failed[k]) for k in shift.cells)
    assert "all-zero Grad-CAM map" in shift.to_markdown() and "n/a" in shift.to_markdown()


def test_trades_kl_term_is_kl_of_clean_to_adversarial_predictions(mnist_train):
    x, y = tf.constant(mnist_train[0][:16]), tf.constant(mnist_train[1][:16])
    net = models.lenet(dropout=0)
    adv = tf.clip_by_value(x + 0.3 * tf.sign(tf.random.stateless_normal(x.shape, seed=[1, 2])), 0.0, 1.0)
    out = defenses.trades(steps=7).loss_terms(net, x, y, adv)
    p = tf.nn.softmax(net(x)).numpy().astype("float64")
    q = tf.nn.softmax(net(adv)).numpy().astype("float64")
    expected = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1))
    assert expected > 1e-4 and float(out.terms["kl"]) == pytest.approx(expected, rel=1e-3)
    np.testing.assert_array_equal(out.task_logits.numpy(), out.clean_logits.numpy())  # CE on clean inputs


def test_integrated_gradients_maps_train_under_xla(mnist_train):
    # the map term takes IG_STEPS + 1 points per map inside the step; XLA traces it and the term moves
    x, y = mnist_train[0][:64], mnist_train[1][:64]
    defense = defenses.get("attention_trades", eps=0.3, steps=2, activation="relu", method="integrated_gradients")
    robust = RobustModel(models.small_lenet(), defense=defense)
    robust.compile(optimizer="adam", jit_compile=True)
    logs = robust.fit(x, y, batch_size=32, epochs=2, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values()) and logs["attention_loss"][-1] > 0.0
    assert 0.0 <= logs["empty_map_rate"][-1] < 1.0
