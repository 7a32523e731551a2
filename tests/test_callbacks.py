"""Training callbacks: the catastrophic-overfitting monitor."""
import warnings

import numpy as np
import pytest

import keras
from keras_attdef import RobustModel, defenses, models
from keras_attdef.callbacks import CatastrophicOverfittingMonitor


def test_monitor_logs_both_attacks_and_passes_a_plain_model(trained_lenet, mnist_test):
    """A plain model is fooled by FGSM and PGD alike: not robust, but not the collapse the monitor looks for."""
    x, y = mnist_test
    monitor = CatastrophicOverfittingMonitor(x[:128], y[:128], eps=0.3)
    monitor.set_model(trained_lenet)
    logs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        monitor.on_epoch_end(0, logs)
    assert 0.0 <= logs["pgd_check_accuracy"] <= logs["fgsm_check_accuracy"] <= 0.3
    assert monitor.collapsed_epoch is None and monitor.history[0]["checked"]


def _fit_with(monitor, accuracies, mnist_train, epochs, warmup_steps=0):
    """A short fit whose held-out checks read `accuracies` (one dict per epoch) instead of running attacks."""
    checks = iter(accuracies)
    monitor._accuracies = lambda base: next(checks)
    weights = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights.append(robust.base_model.get_weights()))
    keras.utils.set_random_seed(0)
    robust = RobustModel(models.lenet(), defense=defenses.fast(eps=0.3, warmup_steps=warmup_steps))
    robust.compile(optimizer="adam")
    x, y = mnist_train
    robust.fit(x[:128], y[:128], batch_size=64, epochs=epochs, verbose=0, callbacks=[keep, monitor])
    return robust, weights


def test_a_collapse_stops_training_and_restores_the_last_passing_epoch(mnist_train):
    monitor = CatastrophicOverfittingMonitor(np.zeros((4, 28, 28, 1)), np.zeros(4), eps=0.3, action="stop")
    healthy, collapsed = {"fgsm": 0.9, "pgd": 0.85}, {"fgsm": 0.98, "pgd": 0.0}
    with pytest.warns(RuntimeWarning, match="after epoch 3.*restored"):
        robust, weights = _fit_with(monitor, [healthy, healthy, collapsed, healthy], mnist_train, epochs=4)
    assert monitor.collapsed_epoch == 3 and len(weights) == 3  # the fourth epoch never ran
    for restored, second, third in zip(robust.base_model.get_weights(), weights[1], weights[2]):
        np.testing.assert_array_equal(restored, second)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[1], weights[2]))  # restoring changed something


def test_a_collapse_only_warns_by_default_and_not_while_the_budget_ramps_up(mnist_train):
    collapsed = {"fgsm": 0.98, "pgd": 0.0}
    monitor = CatastrophicOverfittingMonitor(np.zeros((4, 28, 28, 1)), np.zeros(4), eps=0.3)
    with pytest.warns(RuntimeWarning, match="PGD-10 only 0.0%"):
        _, weights = _fit_with(monitor, [collapsed, collapsed], mnist_train, epochs=2)
    assert monitor.collapsed_epoch == 1 and len(weights) == 2  # warned, kept training

    ramping = CatastrophicOverfittingMonitor(np.zeros((4, 28, 28, 1)), np.zeros(4), eps=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _fit_with(ramping, [collapsed], mnist_train, epochs=1, warmup_steps=10)  # 2 steps of a 10-step ramp
    assert ramping.collapsed_epoch is None and not ramping.history[0]["checked"]


@pytest.mark.parametrize("kwargs, match", [({"action": "restore"}, "action"), ({"max_gap": 30}, "fraction"),
                                           ({"y": np.zeros(3)}, "same number")])
def test_monitor_rejects_bad_arguments(kwargs, match):
    args = {"x": np.zeros((4, 28, 28, 1)), "y": np.zeros(4), "eps": 0.3, **kwargs}
    with pytest.raises(ValueError, match=match):
        CatastrophicOverfittingMonitor(**args)


# -- the collapse monitor ---------------------------------------------------------------------------------
def _collapse_run(defense, optimizer, mnist_train, mnist_test, epochs=1, schedule=None):
    """`small_lenet` on 2,048 digits with a CollapseMonitor (stop) on 256 held-out ones; returns it and the weights."""
    from keras_attdef.callbacks import CollapseMonitor

    keras.utils.set_random_seed(0)
    monitor = CollapseMonitor(mnist_test[0][:256], mnist_test[1][:256], action="stop")
    robust = RobustModel(models.small_lenet(), defense=defense)
    robust.compile(optimizer=optimizer)
    weights = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights.append(robust.base_model.get_weights()))
    callbacks = [keep, monitor] + ([keras.callbacks.LearningRateScheduler(schedule)] if schedule else [])
    x, y = mnist_train[0][:2048], mnist_train[1][:2048]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        robust.fit(x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=callbacks)
    return monitor, robust, weights, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_collapse_monitor_stops_madry_without_a_ramp_and_restores_the_last_healthy_epoch(mnist_train, mnist_test):
    # Epoch 1 trains plainly at a small rate; epoch 2 is PGD-10 at eps 0.3 with no ramp at Adam 1e-2 (the
    # collapse the reproduction met with PGD-40 and no ramp): constant logits, one class, empty maps.
    monitor, robust, weights, warned = _collapse_run(
        defenses.madry(steps=10), keras.optimizers.Adam(1e-4), mnist_train, mnist_test, epochs=3,
        schedule=lambda epoch, lr=None: 1e-4 if epoch == 0 else 1e-2)
    assert monitor.collapsed_epoch == 2 and len(weights) == 2, monitor.history  # the third epoch never ran
    assert monitor.history[1]["classes_predicted"] <= 2 and monitor.history[1]["logit_spread"] < 0.01
    assert monitor.history[0]["classes_predicted"] >= 5
    assert any("collapsed after epoch 2" in w and "restored" in w for w in warned), warned
    for restored, first in zip(robust.base_model.get_weights(), weights[0]):
        np.testing.assert_array_equal(restored, first)


@pytest.mark.parametrize("defense", [defenses.madry(steps=3, warmup_steps=16), defenses.trades(steps=7, warmup_steps=16)],
                         ids=["madry", "trades"])
def test_collapse_monitor_passes_madry_and_trades(defense, mnist_train, mnist_test):
    monitor, _, _, warned = _collapse_run(defense, "adam", mnist_train, mnist_test)
    assert monitor.collapsed_epoch is None and not any("collapsed" in w for w in warned), monitor.history
    assert monitor.history[0]["classes_predicted"] == 10 and monitor.history[0]["empty_map_rate_check"] < 0.5


def test_collapse_monitor_refuses_bad_arguments(mnist_test):
    from keras_attdef.callbacks import CollapseMonitor

    with pytest.raises(ValueError, match="max_empty_rate"):
        CollapseMonitor(mnist_test[0][:8], mnist_test[1][:8], max_empty_rate=1.5)
    with pytest.raises(ValueError, match="same number"):
        CollapseMonitor(mnist_test[0][:8], mnist_test[1][:7])
