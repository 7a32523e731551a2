"""The detector experiment behind `keras-attdef detect`: the thesis's Tables 1-4 on MNIST or CIFAR-10.

Stages, each saved as it ends (a stopped run resumes): the classifier f1 (a plainly trained LeNet or
CifarNet), a second classifier of the same family with another seed (the transfer source), the
detector (LAN generator G, then mask classifier f2), one detection row per attack and setting, the
adaptive attacks (Linf, L2 and L0), and a PNG of images and masks (benign and adversarial, the thesis's Figures 2 and 4).

Data: MNIST's official training and test splits. CIFAR-10: only the test set is available offline
(`$KERAS_ATTDEF_DATA/cifar10_jpeg_test.npz`), so it is shuffled once (seed 0) and split into a
**training part** (the first 8,000) and a **held-out part** (the last 2,000); figures are labelled so.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from keras_attdef.evaluation.suites import JSMA_GAMMA, detection_attacks
from keras_attdef.experiments.store import ResultStore
from keras_attdef.experiments.training import train_or_load

# benign training images whose scores set the calibrated threshold (last of the training part)
CALIBRATION_SIZE = 5000
# the adaptive attack's L2 budget: the usual MNIST / CIFAR-10 L2 threat models (Croce and Hein's 2.0 and 0.5)
L2_EPS = {"mnist": 2.0, "fashion_mnist": 2.0, "cifar10": 0.5}
# JSMA's budget (share of input features it may change); the L0 adaptive attack gets the same number


def _fitted_detector(path, store, classifier, x, y, hardening, beta, noise, squeeze_bits, median_size,
                     generator_epochs, mask_epochs, verbose, seed, mask_attack_size, calibrate_pass_rate):
    """The detector saved at `path`, else a new one fitted and saved; calibrated when asked. A changed detector
    rebinds the store, so rows measured on an earlier one are dropped."""
    import keras

    from keras_attdef.detect import LatentAttentionDetector

    if path.exists():
        detector = keras.models.load_model(path)
    else:
        store.bind("detector", uuid.uuid4().hex)
        detector = LatentAttentionDetector(classifier, beta=beta, noise=noise, squeeze_bits=squeeze_bits,
                                           median_size=median_size)
        store.put("detector/fit", detector.fit(x, y, verbose=verbose, generator_epochs=generator_epochs,
                                               mask_epochs=mask_epochs, seed=seed, mask_attacks=hardening,
                                               mask_attack_size=mask_attack_size).history)
        detector.save(path)
    if calibrate_pass_rate is not None:
        before = detector.threshold
        threshold = detector.calibrate(x[-CALIBRATION_SIZE:], calibrate_pass_rate)  # benign, not the test images
        if before is None or not np.isclose(before, threshold):
            fit = store.get("detector/fit", lambda: None)
            store.bind("detector", uuid.uuid4().hex)
            store.put("detector/fit", fit)
            detector.save(path)
    return detector


def _detection_rows(store, detector, x_eval, y_eval, attacks, source, eps, l2_eps, l0_eps, adaptive_steps):
    """Every row of the tables (each attack direct and transferred, then the three adaptive attacks), stored."""
    from keras_attdef.detect.evaluation import detection_report

    rows, benign = {}, None
    for setting, model in (("direct", None), ("transfer", source)):
        for name, spec in attacks.items():
            report = store.get(f"detector/{name} ({setting})", lambda: detection_report(
                detector, x_eval, y_eval, {name: spec}, source_model=model, direct=model is None).to_dict())
            rows.update(report["rows"])
            benign = report["benign"]
    for name, kwargs in ((f"PGD-{adaptive_steps} {eps:.3g} on f1 + detector", {"eps": eps}),
                         (f"PGD-{adaptive_steps} L2 {l2_eps:g} on f1 + detector", {"eps": l2_eps, "norm": "l2"}),
                         (f"L0 {l0_eps} features on f1 + detector", {"eps": l0_eps, "norm": "l0"})):
        report = store.get(f"detector/{name}", lambda: detection_report(
            detector, x_eval, y_eval, {}, adaptive={name: {**kwargs, "steps": adaptive_steps}}).to_dict())
        rows.update(report["rows"])
    return rows, benign


def detection_experiment(out="runs/detect_mnist", dataset: str = "mnist", train_size: int | None = None,
                         eval_size: int = 1000, classifier_epochs: int = 3, generator_epochs: int = 5,
                         mask_epochs: int = 5, beta: float = 1.0, noise: str = "uniform", squeeze_bits: int | None = None,
                         cw_steps: int = 100,
                         adaptive_steps: int = 100, data_dir=None, seed: int = 0, verbose: int = 2,
                         median_size: int | None = None, mask_attacks: tuple[str, ...] = (),
                         mask_attack_size: int = 2000, calibrate_pass_rate: float | None = None) -> str:
    """Trains f1, a transfer source and the detector; measures it; writes `table.md` and `masks.png`.

    Args:
        out: output folder; reused to resume.
        dataset: `"mnist"`, `"fashion_mnist"` or `"cifar10"` (see the module doc for CIFAR-10's split).
        train_size: first N training images (None: all).
        eval_size: evaluation images.
        classifier_epochs: epochs of f1 and of the transfer source.
        generator_epochs: epochs of the LAN generator.
        mask_epochs: epochs of the mask classifier.
        beta: eq. 9's weight of the corrupted share.
        noise: the LAN noise distribution.
        squeeze_bits: round G's input to `2**squeeze_bits` levels (None: the thesis's G).
        cw_steps: C&W Adam steps per search round (5 rounds).
        adaptive_steps: PGD steps (L0: rounds) per target of the adaptive attacks: Linf at the FGSM row's
            eps, L2 at `L2_EPS[dataset]`, L0 at JSMA's budget (`JSMA_GAMMA` of the input features).
        data_dir: data folder (default `$KERAS_ATTDEF_DATA`).
        seed: seeds f1 and the detector (the transfer source uses seed + 1).
        verbose: Keras `fit` verbosity.
        median_size: median-filter G's input with this window first (None: off).
        mask_attacks: attack names among the experiment's (`"fgsm"`, `"jsma"`, `"cw_l2"`) whose examples, made
            on f1 from the first `mask_attack_size` training images, join f2's training set (see
            `LatentAttentionDetector.fit`). Empty: the thesis's f2.
        mask_attack_size: training images attacked per mask attack.
        calibrate_pass_rate: also flag inputs whose score exceeds the quantile `calibrate_pass_rate` of the
            scores of the last `CALIBRATION_SIZE` training images (`LatentAttentionDetector.calibrate`);
            None: the thesis's label rule alone.

    Returns:
        The Markdown table with its notes.
    """
    from keras_attdef import datasets, models
    from keras_attdef.detect.evaluation import DetectionReport

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.json")
    x, y, x_eval, y_eval, description = datasets.experiment_split(dataset, data_dir, train_size, eval_size)
    build = (lambda: models.cifarnet()) if dataset == "cifar10" else (lambda: models.lenet(x.shape[1:]))
    classifier = train_or_load(out / "classifier.keras", build, "plain", x, y, classifier_epochs, seed=seed,
                               verbose=verbose)[0].base_model
    source = train_or_load(out / "source.keras", build, "plain", x, y, classifier_epochs, seed=seed + 1,
                           verbose=verbose)[0].base_model
    attacks, eps = detection_attacks(dataset, cw_steps)
    hardening = {name: spec for name, spec in attacks.items() if spec.name in mask_attacks}
    unknown = set(mask_attacks) - {spec.name for spec in attacks.values()}
    if unknown:
        raise ValueError(f"Unknown mask attacks {sorted(unknown)}; choose among "
                         f"{sorted(spec.name for spec in attacks.values())}.")
    detector = _fitted_detector(out / "detector.keras", store, classifier, x, y, hardening, beta=beta, noise=noise,
                                squeeze_bits=squeeze_bits, median_size=median_size, generator_epochs=generator_epochs,
                                mask_epochs=mask_epochs, verbose=verbose, seed=seed, mask_attack_size=mask_attack_size,
                                calibrate_pass_rate=calibrate_pass_rate)
    rows, benign = _detection_rows(store, detector, x_eval, y_eval, attacks, source, eps, L2_EPS[dataset],
                                   2 * int(JSMA_GAMMA * x[0].size / 2), adaptive_steps)  # L0: JSMA's pairs of features
    table = DetectionReport(rows, benign).to_markdown()
    text = f"{table}\n\nData: {description}. Detector: LAN beta {beta:g}, {noise} noise" + \
           (f", G's input median-filtered {median_size}x{median_size}" if median_size else "") + \
           (f", G's input rounded to {2 ** squeeze_bits} levels" if squeeze_bits else "") + \
           (" (BPDA in the adaptive attack)" if squeeze_bits or median_size else "") + \
           (f"; also flagged when the score exceeds {detector.threshold:.4f}, the {calibrate_pass_rate:g} quantile of "
            f"the scores of the last {min(CALIBRATION_SIZE, len(x))} training images" if calibrate_pass_rate is not None else "") + \
           (f"; f2 also trained on the masks of {' and '.join(hardening)} examples made on f1 from the first "
            f"{mask_attack_size} training images (true labels)" if hardening else "") + \
           f". Transfer source: a second " \
           f"plainly trained classifier of the same architecture (seed {seed + 1})."
    (out / "table.md").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps({"rows": rows, "benign": benign}, indent=2))
    plot_masks(detector, x_eval[:6], y_eval[:6], attacks, out / "masks.png")
    return text


def plot_masks(detector, x, y, attacks: dict, path) -> Path:
    """Images (top) and their attention masks (bottom), benign and under each attack (Figures 2 and 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_attdef.evaluation.robustness import adversarial_examples

    columns = {"benign": x, **{name: adversarial_examples(detector.classifier, x, y, spec)
                               for name, spec in attacks.items()}}
    outputs = {name: detector.outputs(images) for name, images in columns.items()}
    fig, axes = plt.subplots(2 * len(x), len(columns), figsize=(2.0 * len(columns), 2.0 * 2 * len(x)))
    for col, (name, images) in enumerate(columns.items()):
        o = outputs[name]
        for i in range(len(x)):
            top, bottom = axes[2 * i, col], axes[2 * i + 1, col]
            top.imshow(images[i].squeeze(), cmap="gray" if images.shape[-1] == 1 else None, vmin=0, vmax=1)
            top.set_title(f"{name}\nf1: {o['label'][i]}" if i == 0 else f"f1: {o['label'][i]}", fontsize=8)
            flag = "FLAGGED" if o["adversarial"][i] else "benign"
            bottom.imshow(o["mask"][i].squeeze(), cmap="magma", vmin=0, vmax=1)
            bottom.set_title(f"mask f2: {o['mask_label'][i]} ({flag})", fontsize=8,
                             color="crimson" if o["adversarial"][i] else "black")
            top.axis("off")
            bottom.axis("off")
    fig.suptitle("Images and LAN attention masks (bright: pixels the classifier needs)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the columns
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
