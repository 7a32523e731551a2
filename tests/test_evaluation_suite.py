"""The evaluation suite: APGD, Square, the AutoAttack-style cascade, the masking audit and the report."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_attdef import AttackSpec, attacks, evaluate_robustness, models
from keras_attdef.attacks.auto_pgd import checkpoint_intervals, dlr_loss, targeted_dlr_loss
from keras_attdef.evaluation import autoattack, evaluate, model_checks


def quantised(net, levels: int = 8):
    """`net` behind an input quantiser whose gradient is zero everywhere (a deliberately masked model)."""
    inputs = keras.Input(net.input_shape[1:])
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t * levels) / levels))(inputs)
    return keras.Model(inputs, net(rounded), name="quantised")


def test_checkpoints_follow_the_paper():
    assert checkpoint_intervals(100) == [22, 19, 16, 13, 10, 7, 6, 6]
    assert sum(checkpoint_intervals(100)) <= 100 and checkpoint_intervals(5) == [1, 1, 1, 1, 1]


def test_dlr_losses_match_a_hand_computation():
    logits = tf.constant([[4.0, 1.0, 3.0, 0.0, -1.0]])
    # sorted: 4, 3, 1, 0, -1; label 0: -(4 - 3) / (4 - 1)
    assert float(dlr_loss(logits, tf.constant([0]))[0]) == pytest.approx(-1 / 3)
    # targeted at class 2: -(4 - 3) / (4 - (1 + 0) / 2)
    assert float(targeted_dlr_loss(logits, tf.constant([0]), tf.constant([2]))[0]) == pytest.approx(-1 / 3.5)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.5)])
def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_steps(trained_lenet, mnist_test, norm, eps):
    x, y = mnist_test[0][:256], mnist_test[1][:256]
    rows = {"pgd": AttackSpec("pgd", eps=eps, steps=20, norm=norm),
            "apgd_ce": AttackSpec("apgd_ce", eps=eps, steps=20, norm=norm)}
    accuracy = evaluate_robustness(trained_lenet, (x, y), rows, progress=False).accuracy
    assert accuracy["apgd_ce"] <= accuracy["pgd"] + 0.01, accuracy
    assert accuracy["apgd_ce"] < accuracy["clean"] - 0.1, accuracy


def test_apgd_t_targets_the_runner_up_classes(trained_lenet, mnist_test):
    x, y = mnist_test[0][:128], mnist_test[1][:128]
    accuracy = evaluate_robustness(trained_lenet, (x, y), {"t": AttackSpec("apgd_t", eps=0.15, steps=20,
                                                                           num_targets=3)}, progress=False).accuracy
    assert accuracy["t"] < accuracy["clean"] - 0.2, accuracy


def test_square_needs_no_gradient(trained_lenet, mnist_test):
    masked = quantised(trained_lenet)
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    rows = {"pgd": AttackSpec("pgd", eps=0.3, steps=10),
            "square": AttackSpec("square", eps=0.3, queries=300, seed=0)}
    accuracy = evaluate_robustness(masked, (x, y), rows, progress=False).accuracy
    assert accuracy["clean"] > 0.9 and accuracy["pgd"] > 0.8  # the gradient is zero: PGD cannot move
    assert accuracy["square"] < 0.05, accuracy
    result = attacks.square(masked, x, y, eps=0.3, queries=300, seed=0, return_result=True)
    assert result.queries.max() <= 300 and np.all(result.queries[result.success] >= 1)
    # the working set shrinks as samples are fooled: every row must still come back to its own place
    predictions = np.argmax(masked.predict(result.x_adv, verbose=0), -1)
    np.testing.assert_array_equal(result.success, predictions != y)
    assert np.abs(result.x_adv - x).max() <= 0.3 + 1e-6
    assert len(set(result.queries.tolist())) > 1  # fooled samples stopped querying at different counts


def test_apgd_t_skips_fooled_points_in_graph_mode():
    # Labels the model already gets wrong: the first target fools every point, so the later targets run on
    # an empty batch, which must work inside a tf.function (as `evaluate_robustness` compiles attacks).
    net = models.lenet()
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype("float32")
    wrong = (np.argmax(net.predict(x, verbose=0), -1) + 1) % 10
    run = tf.function(lambda x, y: attacks.apgd_t(net, x, y, eps=0.1, steps=3, num_targets=3), autograph=False)
    x_adv = run(tf.constant(x), tf.constant(wrong, tf.int32)).numpy()
    assert x_adv.shape == x.shape and np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert np.all(np.argmax(net.predict(x_adv, verbose=0), -1) != wrong)


def test_square_l2_stays_in_the_ball_and_fools(trained_lenet, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]
    result = attacks.square(trained_lenet, x, y, eps=3.0, norm="l2", queries=300, seed=1, return_result=True)
    norms = np.linalg.norm((result.x_adv - x).reshape(len(x), -1), axis=1)
    assert norms.max() <= 3.0 + 1e-4 and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert result.success.mean() > 0.4  # 58% at 300 queries, 84% at 1,000, 94% at 3,000 when measured


def test_autoattack_cascade_only_lowers_accuracy(trained_lenet, mnist_test):
    x, y = mnist_test[0][:96], mnist_test[1][:96]
    result = autoattack(trained_lenet, x, y, eps=0.1, version="standard", steps=10, queries=100, progress=False)
    values = list(result.accuracy.values())
    assert all(a >= b for a, b in zip(values, values[1:])), result.accuracy
    fooled = np.array([f is not None for f in result.fooled_by])
    np.testing.assert_array_equal(fooled, ~result.robust)
    predictions = np.argmax(trained_lenet.predict(result.x_adv, verbose=0), -1)
    assert np.all(predictions[~result.robust] != y[~result.robust])  # every kept example really fools
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6
    assert list(result.seconds) == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert result.label.startswith("AutoAttack-style (standard)")


def test_bfloat16_attacks_keep_the_weights_and_every_verdict_is_the_float32_models(trained_lenet, mnist_test):
    from keras_attdef.evaluation.precision import attack_model

    x, y = mnist_test[0][:64], mnist_test[1][:64]
    copy = attack_model(trained_lenet, "bfloat16")
    full, low = trained_lenet.predict(x, verbose=0), copy.predict(x, verbose=0)
    assert low.dtype == np.float32 and np.abs(full - low).max() < 0.05 * np.abs(full).max()  # same weights
    result = autoattack(trained_lenet, x, y, eps=0.15, version="fast", steps=10, progress=False, precision="bfloat16")
    assert result.label.endswith("attacks in bfloat16") and 0 < result.robust.sum() < result.robust.size
    predictions = np.argmax(trained_lenet.predict(result.x_adv, verbose=0), -1)
    assert np.all(predictions[~result.robust] != y[~result.robust])  # fooled means fooled in float32
    assert np.all(predictions[result.robust] == y[result.robust])
    with pytest.raises(ValueError, match="Unknown attack precision"):
        attack_model(trained_lenet, "float16")

    class Subclassed(keras.Model):
        def call(self, inputs):
            return tf.reshape(inputs, (-1, 784))[:, :10]

    with pytest.raises(ValueError, match="precision='float32'"):
        attack_model(Subclassed(), "bfloat16")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_projection_lands_on_the_hyperplane_with_the_smallest_step(norm):
    from keras_attdef.attacks.fab import project_on_hyperplane

    rng = np.random.default_rng(0)
    point = tf.constant(rng.uniform(0.2, 0.8, (5, 6)), tf.float32)
    w = tf.constant(rng.normal(size=(5, 6)), tf.float32)
    c = tf.constant(rng.normal(size=5) * 0.1, tf.float32)
    step = project_on_hyperplane(point, w, c, norm, 0.0, 1.0).numpy()
    np.testing.assert_allclose(np.sum(w.numpy() * step, -1), c.numpy(), atol=1e-5)
    assert np.all(point.numpy() + step >= -1e-7) and np.all(point.numpy() + step <= 1 + 1e-7)
    # no box constraint active: the closed forms |c| / ||w||_dual
    dual = np.abs(w.numpy()).sum(-1) if norm == "linf" else np.linalg.norm(w.numpy(), axis=-1)
    size = np.abs(step).max(-1) if norm == "linf" else np.linalg.norm(step, axis=-1)
    np.testing.assert_allclose(size, np.abs(c.numpy()) / dual, rtol=1e-4)
    # out of reach: the box's best corner
    far = project_on_hyperplane(point, w, tf.fill([5], 100.0), norm, 0.0, 1.0).numpy()
    np.testing.assert_allclose(point.numpy() + far, (w.numpy() > 0).astype(np.float32), atol=1e-6)
    # reachable only with some coordinates at the box: the r of a plain bisection on w . clip(r * direction)
    edge = tf.constant(rng.choice([0.0, 0.05, 0.5, 0.95, 1.0], (5, 40)), tf.float32)
    w = rng.normal(size=(5, 40)).astype(np.float32)
    c = (0.5 * np.abs(w) * np.where(w > 0, 1 - edge.numpy(), edge.numpy())).sum(-1)  # half the corner's reach
    step = project_on_hyperplane(edge, tf.constant(w), tf.constant(c), norm, 0.0, 1.0).numpy()
    direction = np.sign(w) if norm == "linf" else w
    low, high = 0 - edge.numpy(), 1 - edge.numpy()
    lower, upper = np.zeros(5), np.full(5, 1e6)
    for _ in range(200):
        middle = (lower + upper) / 2
        short = (w * np.clip(middle[:, None] * direction, low, high)).sum(-1) < c
        lower, upper = np.where(short, middle, lower), np.where(short, upper, middle)
    np.testing.assert_allclose(step, np.clip(upper[:, None] * direction, low, high), atol=1e-5)
    at_bound = np.isclose(edge.numpy() + step, 0) | np.isclose(edge.numpy() + step, 1)
    assert np.any(at_bound & (np.abs(step) > 1e-3)) and np.any(~at_bound)  # the box is active, not everywhere


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.5)])
def test_fab_t_finds_small_changes_inside_the_budget(trained_lenet, mnist_test, norm, eps):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    result = attacks.fab_t(trained_lenet, x, y, eps=eps, steps=30, norm=norm, num_targets=3, return_result=True)
    x_adv, norms = result.x_adv, result.distance
    change = (np.abs(x_adv - x).reshape(64, -1).max(1) if norm == "linf"
              else np.linalg.norm((x_adv - x).reshape(64, -1), axis=1))
    assert change.max() <= eps * (1 + 1e-5)
    fooled = np.argmax(trained_lenet.predict(x_adv, verbose=0), -1) != y
    assert np.all(fooled == (norms <= eps * (1 + 1e-6)))  # fooled exactly where a change within eps was found
    np.testing.assert_array_equal(result.success, fooled)
    np.testing.assert_allclose(change[fooled & (norms > 0)], norms[fooled & (norms > 0)], rtol=1e-4)
    accuracy = 1 - fooled.mean()
    pgd = np.mean(np.argmax(trained_lenet.predict(attacks.pgd(trained_lenet, x, y, eps=eps, steps=30, norm=norm),
                                                  verbose=0), -1) == y)
    assert accuracy <= pgd + 0.1, (accuracy, pgd)  # a minimal-norm attack: close to PGD at the budget


def test_fab_t_skipping_fooled_points_keeps_the_robust_accuracy(trained_lenet, mnist_test):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    results = {skip: attacks.fab_t(trained_lenet, x, y, eps=0.1, steps=20, num_targets=3, return_result=True,
                                   skip_fooled=skip) for skip in (True, False)}
    within = {skip: result.success for skip, result in results.items()}
    assert 0 < within[True].sum() < 64  # some points fooled, some not: both paths of the skip ran
    # Rows are independent, so skipping changes no decision (one row may differ by float rounding of
    # another batch size); the skipped rows keep their first success, never a larger change than eps.
    assert np.sum(within[True] != within[False]) <= 1
    found = np.isfinite(results[True].distance)
    assert np.all(results[False].distance[found] <= results[True].distance[found] + 1e-6)


def test_masking_audit_flags_a_masked_model_and_not_a_plain_one(trained_lenet, mnist_test):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    # The transfer row (PGD made on the unmasked net) is the black-box attack the gradient ones must match.
    masked = evaluate(quantised(trained_lenet), x, y, eps=0.3, suite="quick", progress=False,
                      steps_grid=(1, 5), eps_fractions=(0.5, 1.0), source_model=trained_lenet)
    assert {"zero_gradients", "gradient_free_beats_white_box"} <= set(masked.raised), masked.to_markdown()
    assert "sign test" in masked.flags["gradient_free_beats_white_box"].detail  # judged point by point
    plain_flags = model_checks(trained_lenet, x, y)
    assert not any(flag.raised for flag in plain_flags.values()), plain_flags
    softmax = keras.Sequential([trained_lenet, keras.layers.Softmax()])
    assert model_checks(softmax, x, y)["probabilities_not_logits"].raised
    inputs = keras.Input((28, 28, 1))
    noise = keras.layers.Lambda(lambda t: t + tf.random.normal(tf.shape(t), stddev=0.1))
    noisy_model = keras.Model(inputs, trained_lenet(noise(inputs)))
    assert model_checks(noisy_model, x, y)["randomised_outputs"].raised


def test_masking_audit_flags_a_gradient_free_attack_beating_white_box(trained_lenet, mnist_test):
    from keras_attdef.evaluation import curve_checks

    flags = curve_checks({"PGD": 0.8, "Square": 0.1}, 0.95, ["PGD"], ["Square"], {0.0: 0.95, 0.1: 0.5, 0.3: 0.7},
                         {1: 0.6, 10: 0.5})
    assert flags["gradient_free_beats_white_box"].raised and flags["accuracy_grows_with_eps"].raised
    assert not flags["accuracy_grows_with_steps"].raised and not flags["adversarial_above_clean"].raised


def test_gradient_free_lead_is_judged_point_by_point_against_all_white_box_attacks():
    from keras_attdef.evaluation import curve_checks

    def flag(square=(), pgd=(), apgd=(), n=500):
        """The audit's verdict when each attack fools the points (indices) given."""
        correct = {name: ~np.isin(np.arange(n), fooled) for name, fooled in
                   (("PGD", pgd), ("APGD", apgd), ("Square", square))}
        accuracy = {k: float(v.mean()) for k, v in correct.items()}
        return curve_checks(accuracy, 1.0, ["PGD", "APGD"], ["Square"], correct=correct)["gradient_free_beats_white_box"]

    # A masked model: Square fools a fifth of the points and no gradient attack finds them.
    assert flag(square=range(100)).raised and "Square alone fooled 100 point(s)" in flag(square=range(100)).detail
    # Four points of 500 that only Square fools: a sign test gives p = 1/16, chance; the old rule (0.5 points)
    # flagged it. Nine: p = 0.002, flagged. Nine against six the other way: p = 0.30.
    assert not flag(square=range(4)).raised and "p = 0.0625" in flag(square=range(4)).detail
    assert flag(square=range(9)).raised
    assert not flag(square=range(9), apgd=range(100, 106)).raised
    # The white-box attacks count together: Square beats each alone by 0.8 points or more, not the two.
    assert not flag(square=range(9), pgd=range(5), apgd=range(5, 9)).raised


def test_single_step_attack_beating_the_iterative_ones_is_flagged():
    from keras_attdef.evaluation import curve_checks

    n = 500
    fooled = lambda k: np.arange(n) >= k  # noqa: E731  (correct on all but the first k points)
    broken_pgd = {"FGSM": fooled(200), "PGD": fooled(20)}  # e.g. a PGD stuck in a flat, masked region
    flags = curve_checks({k: float(v.mean()) for k, v in broken_pgd.items()}, 1.0, ["FGSM", "PGD"], [],
                         correct=broken_pgd, single_step=["FGSM"])
    assert flags["single_step_beats_iterative"].raised and "FGSM alone fooled 180" in flags["single_step_beats_iterative"].detail
    healthy = {"FGSM": fooled(20), "PGD": fooled(200)}
    assert not curve_checks({k: float(v.mean()) for k, v in healthy.items()}, 1.0, ["FGSM", "PGD"], [],
                            correct=healthy, single_step=["FGSM"])["single_step_beats_iterative"].raised


def test_curve_rises_within_sampling_noise_are_not_flagged():
    from keras_attdef.evaluation import curve_checks

    # a plain LeNet on 500 digits: PGD-1 3.6%, PGD-2 4.8% (six digits; two standard errors are 2.5 points)
    steps = {1: 0.036, 2: 0.048, 5: 0.0}
    assert curve_checks({}, 0.99, [], [], None, steps)["accuracy_grows_with_steps"].raised  # fixed 0.5 points
    assert not curve_checks({}, 0.99, [], [], None, steps, num_samples=500)["accuracy_grows_with_steps"].raised
    # a masked model's rise (tens of points) stays flagged, and a small rise on many points too
    assert curve_checks({}, 0.99, [], [], None, {1: 0.1, 10: 0.6}, num_samples=500)["accuracy_grows_with_steps"].raised
    assert curve_checks({}, 0.99, [], [], None, steps, num_samples=50_000)["accuracy_grows_with_steps"].raised


def test_report_says_how_far_pgd_alone_overstates_the_worst_case():
    from keras_attdef.evaluation.report import EvaluationReport

    def report(accuracy):
        return EvaluationReport("m", 0.3, "linf", 1000, accuracy, {}, {}, {}, {}, {}, 1.0)

    # the reproduction's fast model: PGD-100 71.2%, the cascade's worst case 57.3%
    fast = report({"clean": 0.988, "PGD-20": 0.75, "PGD-100": 0.712, "APGD-T": 0.582, "worst case": 0.573})
    assert fast.pgd_overstatement[0] == "PGD-100" and abs(fast.pgd_overstatement[1] - 13.9) < 1e-6
    assert "PGD-100 alone reads 13.9 points above the worst case" in fast.to_markdown()
    tight = report({"clean": 0.99, "PGD-20": 0.5, "worst case": 0.498})
    assert "above the worst case" not in tight.to_markdown()  # within TOLERANCE: no caveat
    assert report({"clean": 0.99, "Square": 0.9, "worst case": 0.9}).pgd_overstatement is None


def test_clear_errors_for_bad_input(trained_lenet, mnist_test):
    x, y = mnist_test[0][:8], mnist_test[1][:8]
    with pytest.raises(ValueError, match="eps must be"):
        autoattack(trained_lenet, x, y, eps=-0.1, progress=False)
    with pytest.raises(ValueError, match="Unknown norm"):
        autoattack(trained_lenet, x, y, eps=0.1, norm="l3", progress=False)
    with pytest.raises(ValueError, match="Unknown AutoAttack version"):
        autoattack(trained_lenet, x, y, eps=0.1, version="strong", progress=False)
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 9\]"):
        autoattack(trained_lenet, x, y + 10, eps=0.1, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        autoattack(trained_lenet, np.where(x > 0.5, np.nan, x), y, eps=0.1, progress=False)
    features = keras.Model(trained_lenet.inputs, trained_lenet.get_layer("conv2").output)
    with pytest.raises(ValueError, match="class logits"):
        autoattack(features, x, y, eps=0.1, progress=False)
    with pytest.raises(ValueError, match="eps must be"):
        attacks.square(trained_lenet, x, y, eps=-1.0)
    with pytest.raises(ValueError, match="Unknown APGD loss"):
        attacks.apgd(trained_lenet, x, y, eps=0.1, loss="hinge")


def test_evaluate_reuses_the_cascade_and_reads_as_autoattack(trained_lenet, mnist_test, monkeypatch):
    """`evaluate(suite="fast")` runs the AutoAttack-style parts as the cascade (each on the points the parts
    before left): its rows are the cascade's figures on the same seed, not a second run of every attack."""
    import importlib

    from keras_attdef.evaluation import autoattack, evaluate, precision, robustness

    autoattack_module = importlib.import_module("keras_attdef.evaluation.autoattack")  # the package shadows it
    report_module = importlib.import_module("keras_attdef.evaluation.report")
    rows_run = []

    def run_rows(model, data, attacks, *args, **kwargs):
        rows_run.extend(attacks)
        return robustness.evaluate_robustness(model, data, attacks, *args, **kwargs)

    monkeypatch.setattr(report_module, "evaluate_robustness", run_rows)
    x, y = mnist_test[0][:32], mnist_test[1][:32]
    report = evaluate(trained_lenet, x, y, eps=0.1, suite="fast", batch_size=32, progress=False,
                      eps_fractions=(1.0,), steps_grid=(1,))
    # the eps curve's point at eps is the PGD-20 row itself, not a second run of it
    assert "eps 0.1" not in rows_run and "steps 1" in rows_run and report.eps_curve[0.1] == report.accuracy["PGD-20"]
    cascade = autoattack(trained_lenet, x, y, eps=0.1, version="fast", batch_size=32, progress=False)
    assert report.accuracy["APGD-CE"] == cascade.accuracy["after APGD-CE"]
    assert report.accuracy["after APGD-T"] == cascade.accuracy["robust"] < report.accuracy["clean"]
    assert report.accuracy["worst case"] <= cascade.accuracy["robust"]
    assert "APGD-T" not in report.accuracy and "bfloat16" not in report.label
    # bfloat16: both the cascade's parts and the other rows attack the copy (autoattack's own bfloat16
    # figures are checked in test_bfloat16_attacks_keep_the_weights_...)
    asked = []

    def spy(base, chosen="float32"):
        asked.append(chosen)
        return precision.attack_model(base, chosen)

    monkeypatch.setattr(autoattack_module, "attack_model", spy)
    monkeypatch.setattr(robustness, "attack_model", spy)
    report = evaluate(trained_lenet, x, y, eps=0.1, suite="fast", batch_size=32, progress=False,
                      eps_fractions=(1.0,), steps_grid=(1,), precision="bfloat16")
    assert report.label.endswith("attacks in bfloat16") and set(asked) == {"bfloat16"} and len(asked) >= 2
    assert report.accuracy["after APGD-T"] <= report.accuracy["APGD-CE"] <= report.accuracy["clean"]
