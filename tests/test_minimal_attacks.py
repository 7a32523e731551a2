"""C&W-L2 and JSMA: they succeed, report honestly what they changed, and refuse bad input; and an
independent implementation (IBM's ART, when installed) finds the same robust accuracy on the same points."""
import numpy as np
import pytest

from keras_attdef import attacks


def _predict(net, x):
    return np.argmax(net.predict(x, verbose=0), axis=-1)


def test_carlini_wagner_fools_a_plain_model_with_small_changes(trained_lenet, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]
    result = attacks.carlini_wagner_l2(trained_lenet, x, y, steps=100, search_steps=5, initial_const=0.1,
                                       learning_rate=0.1, return_result=True)
    assert result.success.mean() >= 0.95, result.success.mean()
    predicted = _predict(trained_lenet, result.x_adv)
    # a claimed success is a real misclassification, and its reported L2 is the real distance
    assert np.all(predicted[result.success] != y[result.success])
    measured = np.sqrt(np.sum((result.x_adv - x) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(result.distance[result.success], measured[result.success], rtol=1e-4)
    assert np.all(np.isnan(result.distance[~result.success]))
    assert np.nanmedian(result.distance) < 3.0  # MNIST C&W-L2 distances are about 1-2
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    np.testing.assert_array_equal(result.x_adv[~result.success], x[~result.success])


def test_carlini_wagner_targeted_reaches_the_target(trained_lenet, mnist_test):
    x, y = mnist_test[0][:16], mnist_test[1][:16]
    targets = (y + 1) % 10
    result = attacks.carlini_wagner_l2(trained_lenet, x, targets, targeted=True, steps=100, search_steps=5,
                                       learning_rate=0.1, initial_const=0.1, return_result=True)
    assert result.success.mean() >= 0.9
    assert np.all(_predict(trained_lenet, result.x_adv)[result.success] == targets[result.success])


def test_jsma_reaches_targets_changing_few_pixels(trained_lenet, mnist_test):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    result = attacks.jsma(trained_lenet, x, y, gamma=0.15, batch_size=32, return_result=True)
    assert result.success.mean() >= 0.85, result.success.mean()
    assert np.all(result.targets != y)
    assert np.all(_predict(trained_lenet, result.x_adv)[result.success] == result.targets[result.success])
    changed = np.sum(result.x_adv != x, axis=(1, 2, 3))
    assert changed.max() <= 0.15 * 784 + 1  # failures stop at the budget too
    np.testing.assert_array_equal(result.distance[result.success], changed[result.success])
    # theta = +1: pixels only go up, to clip_max
    changed = result.x_adv != x
    assert np.all(result.x_adv[changed] == 1.0)


def test_jsma_pool_is_exact_when_it_holds_every_feature_and_close_when_small(trained_lenet, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]
    exact = attacks.jsma(trained_lenet, x, y, gamma=0.1, return_result=True)
    full_pool = attacks.jsma(trained_lenet, x, y, gamma=0.1, pool=784, return_result=True)
    np.testing.assert_array_equal(full_pool.success, exact.success)
    assert np.mean(full_pool.x_adv == exact.x_adv) > 0.999  # the same pairs (ties aside)
    small = attacks.jsma(trained_lenet, x, y, gamma=0.1, pool=48, return_result=True)
    assert np.sum(small.x_adv != x, axis=(1, 2, 3)).max() <= 0.1 * 784 + 1 and np.all(small.x_adv[small.x_adv != x] == 1.0)
    assert small.success.mean() >= exact.success.mean() - 0.15, (small.success.mean(), exact.success.mean())
    with pytest.raises(ValueError, match="pool"):
        attacks.jsma(trained_lenet, x, y, pool=1)


def test_minimal_attacks_refuse_bad_input(trained_lenet, mnist_test):
    x, y = mnist_test[0][:4], mnist_test[1][:4]
    with pytest.raises(ValueError, match="lie in"):
        attacks.carlini_wagner_l2(trained_lenet, x * 255, y, steps=1, search_steps=1)
    with pytest.raises(ValueError, match="steps"):
        attacks.carlini_wagner_l2(trained_lenet, x, y, steps=0)
    with pytest.raises(ValueError, match="gamma"):
        attacks.jsma(trained_lenet, x, y, gamma=0.0)
    with pytest.raises(ValueError):
        attacks.jsma(trained_lenet, x, y + 10)


def _art_classifier(net):
    art = pytest.importorskip("art.estimators.classification", reason="the [crosscheck] extra is not installed")
    import keras

    return art.TensorFlowV2Classifier(model=net, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
                                      loss_object=keras.losses.CategoricalCrossentropy(from_logits=True))


def test_apgd_ce_matches_an_independent_implementation(trained_lenet, mnist_test):
    classifier = _art_classifier(trained_lenet)
    from art.attacks.evasion import AutoProjectedGradientDescent

    x, y = mnist_test[0][:128], mnist_test[1][:128]
    theirs = AutoProjectedGradientDescent(classifier, norm=np.inf, eps=0.1, eps_step=0.02, max_iter=20,
                                          nb_random_init=1, batch_size=128, loss_type="cross_entropy",
                                          verbose=False).generate(x, y=np.eye(10)[y])
    ours = attacks.apgd_ce(trained_lenet, x, y, eps=0.1, steps=20).numpy()
    accuracy_theirs = np.mean(_predict(trained_lenet, theirs) == y)
    accuracy_ours = np.mean(_predict(trained_lenet, ours) == y)
    assert np.abs(ours - x).max() <= 0.1 + 1e-6
    # 128 points: 4 points is 5 samples, the spread of two random starts here
    assert abs(accuracy_ours - accuracy_theirs) <= 0.04, (accuracy_ours, accuracy_theirs)
