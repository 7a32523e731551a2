"""The LAN detector: masks, decisions, save/load, errors, and its benign true-negative rate."""
import keras
import numpy as np
import pytest

from keras_attdef import AttackSpec, datasets, detect, models
from keras_attdef.evaluation.robustness import adversarial_examples
from keras_attdef.experiments.training import train_or_load

# Measured with this fixture's settings (seed 0; 8,000 training digits; classifier 1 epoch, generator 3, mask
# classifier 5): TN 0.886 (beta 1), 0.892 (beta 0.5 and 2) on 1,000 test digits; 2 + 2 epochs gave 0.842. The
# floor keeps a margin for the run-to-run noise of oneDNN kernels; on 500 digits one point is 0.002.
BENIGN_TN_FLOOR = 0.85


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from conftest import cached_model

    def build():
        x, y = datasets.load("mnist", "train", limit=8000)
        classifier = train_or_load(tmp_path_factory.mktemp("clf") / "c.keras", lambda: models.lenet(), "plain", x, y,
                                   epochs=1, verbose=0)[0].base_model
        detector = detect.LatentAttentionDetector(classifier, beta=1.0)
        detector.fit(x, y, generator_epochs=3, mask_epochs=5, verbose=0, seed=0)
        return detector

    return cached_model("lan_detector", 0, build)


def test_masks_lie_in_unit_interval_with_the_inputs_spatial_shape(fitted):
    x, _ = datasets.load("mnist", "test", limit=64)
    masks = fitted.masks(x)
    assert masks.shape == (64, 28, 28, 1)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert masks.std() > 0.01  # not a constant mask


def test_corruption_keeps_masked_pixels_and_replaces_the_rest():
    x = np.random.default_rng(0).random((2, 5, 5, 3)).astype("float32")
    keep = np.ones((2, 5, 5, 1), "float32")
    np.testing.assert_allclose(detect.corrupt(x, keep).numpy(), x)
    noise = detect.corrupt(x, 0 * keep, "uniform").numpy()
    assert noise.min() >= 0 and noise.max() <= 1 and np.abs(noise - x).mean() > 0.1
    np.testing.assert_allclose(detect.corrupt(x, 0 * keep, "shuffle").numpy(), x[::-1])  # batch of 2: rolled
    with pytest.raises(ValueError, match="noise"):
        detect.corrupt(x, keep, "salt")


def test_benign_digits_are_passed_at_the_measured_rate(fitted):
    x, y = datasets.load("mnist", "test", limit=500)
    flagged = fitted.detect(x)
    assert 1 - flagged.mean() >= BENIGN_TN_FLOOR
    outputs = fitted.outputs(x)
    np.testing.assert_array_equal(outputs["adversarial"], outputs["label"] != outputs["mask_label"])
    assert np.all((outputs["score"] >= 0) & (outputs["score"] <= 1))


def test_round_trip_through_a_keras_file_keeps_every_decision(fitted, tmp_path):
    x, _ = datasets.load("mnist", "test", limit=200)
    fitted.save(tmp_path / "detector.keras")
    loaded = keras.models.load_model(tmp_path / "detector.keras")
    assert isinstance(loaded, detect.LatentAttentionDetector) and loaded.fitted
    np.testing.assert_array_equal(loaded.detect(x), fitted.detect(x))
    np.testing.assert_array_equal(loaded.recover(x), fitted.recover(x))
    np.testing.assert_allclose(loaded.score(x), fitted.score(x), atol=1e-6)


def test_bad_inputs_and_an_unfitted_detector_raise_clear_errors(fitted):
    x, y = datasets.load("mnist", "test", limit=8)
    with pytest.raises(ValueError, match=r"x / 255"):
        fitted.detect(x * 255)
    with pytest.raises(ValueError, match="shape"):
        fitted.detect(x[:, :20])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.detect(bad)
    with pytest.raises(detect.NotFittedError, match="fit"):
        detect.LatentAttentionDetector(fitted.classifier).detect(x)
    with pytest.raises(ValueError, match="noise"):
        detect.LatentAttentionDetector(fitted.classifier, noise="salt")
    with pytest.raises(ValueError, match="labels"):
        detect.LatentAttentionDetector(fitted.classifier).fit(x, y[:4], verbose=0)


def test_report_rates_are_consistent_and_the_adaptive_attack_evades_more_than_fgsm(fitted):
    x, y = datasets.load("mnist", "test", limit=100)
    report = detect.detection_report(fitted, x, y, {"FGSM": AttackSpec("fgsm", eps=0.2)},
                                     adaptive={"adaptive": {"eps": 0.2, "steps": 20}}, progress=False)
    fgsm, adaptive = report.rows["FGSM (direct)"], report.rows["adaptive (adaptive)"]
    assert fgsm["fooled"] > 0 and 0 <= fgsm["tp"] <= 1
    # an example counts as evading when it fools f1 and is not flagged: the two rates must agree
    assert abs(fgsm["evaded"] - fgsm["fooled_rate"] * (1 - fgsm["tp"])) < 1e-9
    assert adaptive["evaded"] >= fgsm["evaded"]
    assert "TN" in report.to_markdown()


def test_l2_adaptive_attack_stays_in_its_ball_and_keeps_unbroken_images_clean(fitted):
    x, y = datasets.load("mnist", "test", limit=40)
    x_adv = detect.adaptive_attack(fitted, x, y, eps=1.0, steps=10, norm="l2")
    norms = np.sqrt(np.sum((x_adv - x) ** 2, axis=(1, 2, 3)))
    assert norms.max() <= 1.0 + 1e-4
    outputs = fitted.outputs(x_adv)
    changed = norms > 0
    assert changed.any()  # some image evaded at this budget
    # an image is only replaced by an example that fools f1 and passes the detector
    assert np.all(outputs["label"][changed] != y[changed]) and not outputs["adversarial"][changed].any()


def test_l0_adaptive_attack_moves_few_whole_pixels_and_keeps_unbroken_images_clean(fitted):
    x, y = datasets.load("mnist", "test", limit=40)
    x_adv = detect.adaptive_attack(fitted, x, y, eps=30, steps=15, norm="l0")
    moved = x_adv != x
    assert moved.sum(axis=(1, 2, 3)).max() <= 30
    assert np.all(np.isin(x_adv[moved], [0.0, 1.0]))  # each changed pixel goes to an end of the range
    outputs = fitted.outputs(x_adv)
    changed = moved.any(axis=(1, 2, 3))
    assert changed.any()
    assert np.all(outputs["label"][changed] != y[changed]) and not outputs["adversarial"][changed].any()
    with pytest.raises(ValueError, match="Unknown norm 'l1'"):
        detect.adaptive_attack(fitted, x[:2], y[:2], eps=3, norm="l1")


def test_squeezed_generator_ignores_perturbations_below_the_rounding_threshold(tmp_path):
    import tensorflow as tf

    squeeze = detect.BitDepthReduction(bits=1)
    x = tf.constant([[0.2, 0.49, 0.51, 0.9]])
    np.testing.assert_array_equal(squeeze(x).numpy(), [[0.0, 0.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(3.0 * squeeze(x))
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), 3.0)  # straight through (BPDA)
    with pytest.raises(ValueError, match="bits"):
        detect.BitDepthReduction(bits=0)

    x, y = datasets.load("mnist", "train", limit=256)
    x = np.round(x)  # black-and-white digits: +-0.2 never crosses the threshold
    detector = detect.LatentAttentionDetector(models.lenet(), squeeze_bits=1)
    detector.fit(x, y, generator_epochs=1, mask_epochs=1, verbose=0)
    noise = np.random.default_rng(0).choice([-0.2, 0.2], size=x[:32].shape).astype("float32")
    np.testing.assert_array_equal(detector.masks(np.clip(x[:32] + noise, 0, 1)), detector.masks(x[:32]))
    detector.save(tmp_path / "squeezed.keras")
    loaded = keras.models.load_model(tmp_path / "squeezed.keras")
    assert loaded.squeeze_bits == 1
    np.testing.assert_array_equal(loaded.detect(x[:64]), detector.detect(x[:64]))


def test_median_filtered_generator_ignores_isolated_pixels_and_round_trips(tmp_path):
    import tensorflow as tf

    median = detect.MedianSmoothing(3)
    x, y = datasets.load("mnist", "train", limit=256)
    specks = x[:32].copy()
    rng = np.random.default_rng(0)
    for image in specks:  # ten isolated white pixels on the background, JSMA's kind of change
        background = np.argwhere(median(image[None]).numpy()[0, ..., 0] == 0)
        for r, c in background[rng.choice(len(background), 10, replace=False)]:
            if image[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].sum() == 0:  # no window holds it and ink
                image[r, c] = 1.0
    assert (specks != x[:32]).any()
    np.testing.assert_array_equal(median(specks).numpy(), median(x[:32]).numpy())
    strokes = median(x[:32]).numpy()
    assert strokes.sum() > 0.5 * x[:32].sum()  # a digit's strokes survive the filter
    image = tf.constant(x[:2])
    with tf.GradientTape() as tape:
        tape.watch(image)
        total = tf.reduce_sum(2.0 * median(image))
    np.testing.assert_allclose(tape.gradient(total, image).numpy(), 2.0)  # straight through (BPDA)
    with pytest.raises(ValueError, match="odd"):
        detect.MedianSmoothing(4)

    detector = detect.LatentAttentionDetector(models.lenet(), squeeze_bits=1, median_size=3)
    detector.fit(x, y, generator_epochs=1, mask_epochs=1, verbose=0)
    np.testing.assert_array_equal(detector.masks(specks), detector.masks(x[:32]))
    detector.save(tmp_path / "median.keras")
    loaded = keras.models.load_model(tmp_path / "median.keras")
    assert loaded.median_size == 3
    np.testing.assert_array_equal(loaded.detect(x[:64]), detector.detect(x[:64]))


def test_calibrated_threshold_passes_the_asked_share_and_only_adds_flags(fitted, tmp_path):
    x, _ = datasets.load("mnist", "train", limit=3000)
    by_labels = fitted.detect(x[2000:])
    try:
        threshold = fitted.calibrate(x[:2000], pass_rate=0.9)
        assert np.mean(fitted.score(x[:2000]) > threshold) <= 0.1 + 1e-3
        flagged = fitted.detect(x[2000:])
        assert np.all(flagged[by_labels]) and flagged.sum() > by_labels.sum()  # the label rule's flags stay
        fitted.save(tmp_path / "calibrated.keras")
        loaded = keras.models.load_model(tmp_path / "calibrated.keras")
        assert loaded.threshold == threshold
        np.testing.assert_array_equal(loaded.detect(x[2000:]), flagged)
        with pytest.raises(ValueError, match="pass_rate must be in"):
            fitted.calibrate(x[:10], pass_rate=1.0)
    finally:
        fitted.threshold = None  # the module's other tests use the label rule


def test_mask_classifier_trained_on_attacked_masks_labels_them_better(fitted):
    x, y = datasets.load("mnist", "train", limit=3000)
    fgsm = {"FGSM": AttackSpec("fgsm", eps=0.3)}
    accuracies = []
    for mask_attacks in (None, fgsm):  # the same G (no generator epochs), a fresh f2 each
        keras.utils.set_random_seed(0)
        detector = detect.LatentAttentionDetector(fitted.classifier, generator=fitted.generator)
        detector.fit(x[:2000], y[:2000], generator_epochs=0, mask_epochs=3, verbose=0, mask_attacks=mask_attacks,
                     mask_attack_size=1000)
        x_adv = adversarial_examples(fitted.classifier, x[2000:], y[2000:], fgsm["FGSM"])
        accuracies.append(np.mean(detector.recover(x_adv) == y[2000:]))  # digits f2 never saw, attacked
    assert accuracies[1] > accuracies[0] + 0.02, accuracies


def test_cli_detect_writes_the_table_the_report_and_the_masks(tmp_path, capsys):
    from keras_attdef import cli

    out = tmp_path / "detect"
    args = ["detect", "--dataset", "mnist", "--train-size", "600", "--eval-size", "12", "--classifier-epochs", "1",
            "--generator-epochs", "1", "--mask-epochs", "1", "--cw-steps", "5", "--adaptive-steps", "5",
            "--squeeze-bits", "1", "--mask-attacks", "fgsm", "--mask-attack-size", "40", "--verbose", "0",
            "--calibrate-pass-rate", "0.9",
            "--out", str(out)]
    assert cli.main(args) == 0
    table = (out / "table.md").read_text()
    assert "rounded to 2 levels" in table and "JSMA (transfer)" in table
    assert "f2 also trained on the masks of FGSM 0.2 examples made on f1 from the first 40" in table
    assert "0.2 on f1 + detector (adaptive)" in table and "L2 2 on f1 + detector (adaptive)" in table
    assert "L0 116 features on f1 + detector (adaptive)" in table
    assert "the 0.9 quantile of the scores of the last 600 training images" in table
    report = __import__("json").loads((out / "report.json").read_text())
    assert 0.0 <= report["benign"]["tn"] <= 1.0 and (out / "masks.png").stat().st_size > 10_000
    assert keras.models.load_model(out / "detector.keras").squeeze_bits == 1
    capsys.readouterr()
    assert cli.main(args) == 0 and "[resume]" in capsys.readouterr().out  # every stage is reused
