"""RobustModel: presets train, logs, XLA, MirroredStrategy, save/load, errors."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_attdef import AttackSpec, RobustModel, defenses, models
from keras_attdef.defenses import AdversarialTraining, LogitPairing, Trades

CHEAP = dict(eps=0.3, step_size=0.1, steps=2)


def _fit(defense, data, jit=False, epochs=1, strategy=None, **fit_kwargs):
    x, y = data
    with (strategy or tf.distribute.get_strategy()).scope():
        robust = RobustModel(models.lenet(), defense=defense)
        robust.compile(optimizer="adam", metrics=["accuracy"], jit_compile=jit)
    history = robust.fit(x, y, batch_size=64, epochs=epochs, verbose=0, **fit_kwargs)
    return robust, history.history


def test_adversarial_training_beats_plain_under_attack(trained_lenet, fast_at_lenet, mnist_test):
    """A short ramped fast-AT run is already far more robust than plain training (PGD-10, eps 0.2)."""
    from keras_attdef import evaluate_robustness

    pgd = {"pgd": AttackSpec("pgd", eps=0.2, step_size=0.05, steps=10)}
    test = (mnist_test[0][:256], mnist_test[1][:256])
    plain_acc = evaluate_robustness(trained_lenet, test, pgd, progress=False).accuracy
    robust_acc = evaluate_robustness(fast_at_lenet, test, pgd, progress=False).accuracy
    assert robust_acc["pgd"] > plain_acc["pgd"] + 0.3, (plain_acc, robust_acc)
    assert robust_acc["clean"] > 0.85


def _one_step_logs(defense, weights, data, jit, strategy=None):
    with (strategy or tf.distribute.get_strategy()).scope():
        base = models.lenet(dropout=0)
        base.set_weights(weights)
        robust = RobustModel(base, defense=defense)
        robust.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit)
    logs = robust.train_on_batch(*data, return_dict=True)
    return logs, base.get_weights()


@pytest.mark.parametrize("defense", [
    AdversarialTraining(AttackSpec("pgd", eps=0.3, step_size=0.1, steps=3, random_start=False)),
    LogitPairing(AttackSpec("pgd", eps=0.3, step_size=0.1, steps=3, random_start=False), {"pair": 0.5}),
    Trades(AttackSpec("pgd", eps=0.3, step_size=0.1, steps=3), {"kl": 6.0}),
], ids=["madry", "alp", "trades"])
def test_same_step_same_loss_plain_xla_and_mirrored(defense, mnist_train, mirrored_strategy):
    data = (mnist_train[0][:64], mnist_train[1][:64])
    keras.utils.set_random_seed(0)  # the same start whatever ran before (sign steps are sensitive to it)
    weights = models.lenet(dropout=0).get_weights()
    mirrored = mirrored_strategy
    runs = {}
    for label, jit, strategy in [("plain", False, None), ("xla", True, None), ("mirrored", False, mirrored),
                                 ("mirrored+xla", True, mirrored)]:
        if isinstance(defense, Trades):
            tf.random.set_seed(0)  # TRADES starts from a random point; compare only where it is seeded alike
        runs[label] = _one_step_logs(defense, weights, data, jit, strategy)
    reference_logs, reference_weights = runs["plain"]
    for label, (logs, new_weights) in runs.items():
        if isinstance(defense, Trades) and label != "plain":
            # The random start differs between devices; the loss must still be close and finite.
            assert abs(logs["loss"] - reference_logs["loss"]) < 0.05, label
            continue
        assert abs(logs["loss"] - reference_logs["loss"]) < 1e-4, (label, logs, reference_logs)
        for a, b in zip(new_weights, reference_weights):
            # XLA and oneDNN sum in different orders: weights agree to float32 noise after one step
            np.testing.assert_allclose(a, b, atol=1e-4, err_msg=label)


def test_eps_warmup_scales_the_budget():
    defense = defenses.madry(eps=0.3, warmup_steps=10)
    assert float(defense.budget_scale(tf.constant(0))) == pytest.approx(0.1)
    assert float(defense.budget_scale(tf.constant(4))) == pytest.approx(0.5)
    assert float(defense.budget_scale(tf.constant(100))) == 1.0
    assert defenses.madry().budget_scale(tf.constant(0)) is None


def test_fit_with_tf_data_and_callbacks(mnist_train, tmp_path):
    from keras_attdef import datasets

    ds = datasets.as_dataset(mnist_train[0][:256], mnist_train[1][:256], 64, drop_remainder=True)
    robust = RobustModel(models.lenet(), defense=defenses.fast())
    robust.compile(optimizer="adam")
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["adv_accuracy"]))
    robust.fit(ds, epochs=2, verbose=0, callbacks=[callback, keras.callbacks.CSVLogger(str(tmp_path / "h.csv"))])
    assert len(seen) == 2 and (tmp_path / "h.csv").read_text().count("\n") == 3


def test_save_load_round_trip_keeps_everything(mnist_train, mnist_test, tmp_path):
    data = (mnist_train[0][:256], mnist_train[1][:256])
    robust, _ = _fit(defenses.alp(weight=0.7, **CHEAP), data)
    path = tmp_path / "robust.keras"
    robust.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RobustModel)
    assert defenses.serialize(loaded.defense) == defenses.serialize(robust.defense)
    x = mnist_test[0][:32]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), robust.predict(x, verbose=0), atol=1e-6)
    assert int(loaded.optimizer.iterations) == int(robust.optimizer.iterations) == 4
    for a, b in zip(loaded.optimizer.variables, robust.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7)
    loaded.fit(*data, batch_size=64, epochs=1, verbose=0)  # continues where it stopped
    assert int(loaded.optimizer.iterations) == 8


def test_saving_a_model_that_was_never_called_keeps_optimizer_state(tmp_path):
    robust = RobustModel(models.lenet(), defense="plain")
    robust.compile(optimizer="adam")
    robust.optimizer.build(robust.trainable_variables)
    robust.optimizer.iterations.assign(7)
    robust.save(tmp_path / "fresh.keras")
    loaded = keras.models.load_model(tmp_path / "fresh.keras")
    assert int(loaded.optimizer.iterations) == 7


def test_call_and_predict_go_to_the_base_model(tiny_batch):
    base = models.lenet()
    robust = RobustModel(base, defense="plain")
    x = tiny_batch[0]
    np.testing.assert_allclose(robust(x).numpy(), base(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(robust.predict(x, verbose=0), base.predict(x, verbose=0), atol=1e-6)


def test_clear_errors(tiny_batch):
    x, y = tiny_batch
    with pytest.raises(ValueError, match="Unknown defence preset 'madri'"):
        RobustModel(models.lenet(), defense="madri")
    with pytest.raises(ValueError, match="eps must be"):
        defenses.madry(eps=-0.1)
    robust = RobustModel(models.lenet(), defense=defenses.fast())
    robust.compile(optimizer="adam")
    with pytest.raises(ValueError, match="inputs but 3 labels"):
        robust.train_on_batch(x, y[:3])
    with pytest.raises(Exception, match=r"must lie in \[0.0, 1.0\]"):
        robust.fit(x * 255, y, verbose=0)
    with pytest.raises(TypeError, match="keras.Model"):
        RobustModel("lenet")
    with pytest.raises(ValueError, match="has no loss terms"):
        LogitPairing(AttackSpec("fgsm", eps=0.1), {"pear": 1.0})
