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
