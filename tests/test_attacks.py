"""Attack properties: ball and range (hypothesis over random inputs), strength, graph and XLA modes."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_attdef import attacks, models
from keras_attdef.attacks.objectives import cross_entropy

TINY = models.lenet(dropout=0)
ALL = {
    "fgsm": lambda m, x, y, eps: attacks.fgsm(m, x, y, eps),
    "fgsm_margin": lambda m, x, y, eps: attacks.fgsm(m, x, y, eps, loss="margin"),
    "step_ll": lambda m, x, y, eps: attacks.step_ll(m, x, eps=eps),
    "r_step_ll": lambda m, x, y, eps: attacks.r_step_ll(m, x, eps=eps),
    "iter_ll": lambda m, x, y, eps: attacks.iter_ll(m, x, eps=eps, step_size=eps / 2, rounds=3),
    "iter_ll_unprojected": lambda m, x, y, eps: attacks.iter_ll(m, x, eps=eps, step_size=eps, rounds=3,
                                                                project_each_round=False),
    "ifgsm": lambda m, x, y, eps: attacks.ifgsm(m, x, y, eps, steps=3),
    "pgd": lambda m, x, y, eps: attacks.pgd(m, x, y, eps, steps=3, restarts=2),
    "pgd_targeted_margin": lambda m, x, y, eps: attacks.pgd(m, x, y, eps, steps=3, targeted=True,
                                                            loss="margin"),
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(ALL)), eps=st.floats(0.0, 0.5), seed=st.integers(0, 2**16),
       low=st.sampled_from([0.0, 0.2]))
def test_linf_attacks_stay_in_ball_and_range(name, eps, seed, low):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, 1.0, (4, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    x_adv = ALL[name](TINY, x, y, eps).numpy()
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


@settings(max_examples=8, deadline=None)
@given(eps=st.floats(0.01, 5.0), seed=st.integers(0, 2**16), random_start=st.booleans())
def test_l2_pgd_stays_in_ball_and_range(eps, seed, random_start):
    rng = np.random.default_rng(seed)
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    x_adv = attacks.pgd(TINY, x, rng.integers(0, 10, 4), eps, steps=3, norm="l2", random_start=random_start)
    norms = np.sqrt(((x_adv.numpy() - x) ** 2).reshape(4, -1).sum(-1))
    assert norms.max() <= eps * (1 + 1e-5) and x_adv.numpy().min() >= 0 and x_adv.numpy().max() <= 1


def test_custom_clip_range():
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    x_adv = attacks.pgd(TINY, x, [1, 2], eps=0.4, steps=3, clip_min=0.3, clip_max=0.7).numpy()
    assert x_adv.min() >= 0.3 - 1e-7 and x_adv.max() <= 0.7 + 1e-7


@pytest.mark.parametrize("name", ["fgsm", "step_ll", "r_step_ll", "iter_ll", "ifgsm", "pgd"])
def test_every_attack_raises_the_loss_of_a_trained_model(trained_lenet, mnist_test, name):
    x, y = mnist_test[0][:128], mnist_test[1][:128]
    clean = cross_entropy(trained_lenet(x, training=False), y).numpy().mean()
    adv = cross_entropy(trained_lenet(ALL[name](trained_lenet, x, y, 0.2), training=False), y).numpy().mean()
    assert adv > clean + 0.5, (name, clean, adv)


def test_more_pgd_steps_is_at_least_as_strong(trained_lenet, mnist_test):
    x, y = mnist_test[0][:256], mnist_test[1][:256]

    def accuracy_and_loss(steps):
        x_adv = attacks.pgd(trained_lenet, x, y, 0.15, step_size=0.02, steps=steps, random_start=False)
        logits = trained_lenet(x_adv, training=False)
        return float(np.mean(np.argmax(logits, -1) == y)), float(cross_entropy(logits, y).numpy().mean())

    (acc_few, loss_few), (acc_many, loss_many) = accuracy_and_loss(3), accuracy_and_loss(20)
    assert acc_many <= acc_few and loss_many >= loss_few


def test_restarts_keep_the_worst_case_per_sample(trained_lenet, mnist_test):
    x, y = mnist_test[0][:128], mnist_test[1][:128]
    tf.random.set_seed(3)
    one = attacks.pgd(trained_lenet, x, y, 0.1, steps=5)
    tf.random.set_seed(3)
    three = attacks.pgd(trained_lenet, x, y, 0.1, steps=5, restarts=3)
    loss_one = cross_entropy(trained_lenet(one, training=False), y).numpy()
    loss_three = cross_entropy(trained_lenet(three, training=False), y).numpy()
    assert np.all(loss_three >= loss_one - 1e-5)


def test_targeted_pgd_reaches_the_target(trained_lenet, mnist_test):
    x, y = mnist_test[0][:128], mnist_test[1][:128]
    target = (y + 1) % 10
    x_adv = attacks.pgd(trained_lenet, x, target, 0.3, step_size=0.01, steps=40, targeted=True)
    hit = np.mean(np.argmax(trained_lenet(x_adv, training=False), -1) == target)
    assert hit >= 0.9, hit


def test_step_ll_one_pass_target_equals_the_two_pass_definition(trained_lenet, mnist_test):
    """StepLL takes its target and its loss from one forward pass; the result is the textbook one."""
    from keras_attdef.attacks import engine
    from keras_attdef.attacks.objectives import classification_objective, least_likely

    x = tf.constant(mnist_test[0][:64])
    target = least_likely(trained_lenet, x)
    textbook = engine.maximize(classification_objective(trained_lenet, target, targeted=True), x, 0.15, 0.15, 1)
    np.testing.assert_array_equal(attacks.step_ll(trained_lenet, x, eps=0.15).numpy(), textbook.numpy())


def test_attacks_run_in_graph_and_xla_with_equal_results(trained_lenet, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]

    def run(x, y):
        return attacks.ifgsm(trained_lenet, x, y, 0.1, steps=4)

    eager = run(x, y).numpy()
    graph = tf.function(run)(x, y).numpy()
    xla = tf.function(run, jit_compile=True)(x, y).numpy()
    # Sign steps may flip on near-zero gradients between kernels: compare by agreement.
    assert np.mean(np.isclose(eager, graph, atol=1e-5)) > 0.999
    assert np.mean(np.isclose(eager, xla, atol=1e-5)) > 0.99


def test_every_attack_traces_under_xla(tiny_batch):
    x, y = tiny_batch
    for name, attack in ALL.items():
        out = tf.function(lambda x, y, attack=attack: attack(TINY, x, y, 0.1), jit_compile=True)(x, y)
        assert np.abs(out.numpy() - x).max() <= 0.1 + 1e-6, name


def test_attack_uses_inference_mode(tiny_batch):
    net = models.small_resnet(input_shape=(28, 28, 1), widths=(4,))
    moving = [w for w in net.non_trainable_weights if "moving_mean" in w.path]
    before = [w.numpy().copy() for w in moving]
    attacks.pgd(net, *tiny_batch, eps=0.3, steps=2)
    for b, w in zip(before, moving):
        np.testing.assert_array_equal(b, w.numpy())


def test_clear_errors(tiny_batch):
    x, y = tiny_batch
    with pytest.raises(ValueError, match="eps must be"):
        attacks.pgd(TINY, x, y, eps=-0.1)
    with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\]"):
        attacks.fgsm(TINY, x * 255, y, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        attacks.fgsm(TINY, np.where(x > 0.5, np.nan, x).astype(np.float32), y, 0.1)
    with pytest.raises(ValueError, match="8 inputs but 3 labels"):
        attacks.pgd(TINY, x, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="Labels must have shape"):
        attacks.pgd(TINY, x, np.zeros((8, 2, 2)), eps=0.1)
    with pytest.raises(ValueError, match="Unknown norm"):
        attacks.pgd(TINY, x, y, eps=0.1, norm="l3")
    with pytest.raises(ValueError, match="Unknown attack loss"):
        attacks.fgsm(TINY, x, y, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="Unknown attack"):
        attacks.AttackSpec("deepfool")


def test_one_hot_labels_are_accepted(trained_lenet, mnist_test):
    x, y = mnist_test[0][:16], mnist_test[1][:16]
    tf.random.set_seed(0)
    a = attacks.fgsm(trained_lenet, x, y, 0.1).numpy()
    b = attacks.fgsm(trained_lenet, x, np.eye(10)[y], 0.1).numpy()
    np.testing.assert_array_equal(a, b)


def test_attack_spec_round_trip_and_scale(trained_lenet, mnist_test):
    spec = attacks.AttackSpec("fgsm", eps=0.2)
    assert attacks.AttackSpec.from_config(spec.get_config()) == spec
    x, y = mnist_test[0][:8], mnist_test[1][:8]
    half = spec(trained_lenet, x, y, scale=0.5).numpy()
    assert np.abs(half - x).max() <= 0.1 + 1e-6
