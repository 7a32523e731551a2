"""The detector measured in the shape of the thesis's Tables 1-4, with an adaptive attack beside the plain ones.

Per attack, on the test points the classifier gets right: the adversarial examples that fool it (made on
the classifier: "direct"; or on another model: "transfer"), and on those
- mask invariance (Table 1): f2 gives the adversarial mask the label it gave the benign one;
- true positive rate (Tables 2-3): share flagged; true negative rate: share of benign inputs not flagged;
- the same after filtering benign inputs whose mask f2 misclassifies (Table 4);
- recovery: f2's label of the adversarial mask is the true class.
The adaptive attacks (`detect.adaptive`) know the detector: they move the classifier to a target class
while pushing f2(G(x)) to the same class, through G and f2.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_attdef.attacks.spec import as_spec
from keras_attdef.detect.adaptive import adaptive_attack
from keras_attdef.inputs import check_inputs
from keras_attdef.evaluation.robustness import adversarial_examples
from keras_attdef.tables import markdown_table, percent


@dataclasses.dataclass
class DetectionReport:
    """Detection rates per attack (`rows`) and on benign inputs (`benign`); `to_markdown`, `to_dict`."""

    rows: dict
    benign: dict

    def to_dict(self) -> dict:
        return {"rows": self.rows, "benign": self.benign}

    def to_markdown(self) -> str:
        b = self.benign
        head = ["attack", "fooled f1", "mask invariance", "TP", "TN", "TP filtered", "TN filtered",
                "recovery", "evades both"]
        cells = [[name, f"{r['fooled']} ({percent(r['fooled_rate'], 1)})", _rate(r["invariance"]),
                  _rate(r["tp"]), _rate(b["tn"]), _rate(r["tp_filtered"]), _rate(b["tn_filtered"]),
                  _rate(r["recovery"]), percent(r["evaded"], 1)] for name, r in self.rows.items()]
        note = (f"Benign: {b['num_images']} test images; classifier accuracy {percent(b['classifier_accuracy'], 1)}, "
                f"mask classifier accuracy {percent(b['mask_accuracy'], 1)}; 'filtered' keeps the images whose "
                f"benign mask f2 labels correctly ({b['filtered']} of them). TP, invariance and recovery are over "
                "the adversarial examples that fool the classifier; TN over all benign images; 'evades both': share of the "
                "correctly classified images whose adversarial example fools the classifier and is not flagged.")
        return markdown_table(head, cells) + "\n\n" + note


def _rate(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _share(mask, where) -> float | None:
    return float(np.mean(mask[where])) if np.any(where) else None


def detection_report(detector, x, y, attacks: dict, source_model=None, adaptive: dict | None = None,
                     direct: bool = True, batch_size: int = 250, progress: bool = True) -> DetectionReport:
    """Measures the detector against each attack, direct (and transferred from `source_model`).

    Args:
        detector: a fitted `LatentAttentionDetector`.
        x: benign test images.
        y: their labels.
        attacks: `{name: AttackSpec}` made on the classifier (and on `source_model` for the transfer rows).
        source_model: a second classifier for the transfer setting, or None.
        adaptive: `{name: adaptive_attack keyword arguments}` (eps, steps, ...) for adaptive rows.
        direct: include the rows of attacks made on the classifier itself (False: transfer rows only).
        batch_size: attack batch size.
        progress: progress bars.

    Returns:
        A `DetectionReport`.
    """
    x, y = check_inputs(detector.classifier, x, y, detector.clip_min, detector.clip_max)
    benign = detector.outputs(x)
    correct = benign["label"] == y
    filtered = benign["mask_label"] == y
    summary = {"num_images": len(y), "classifier_accuracy": float(correct.mean()),
               "mask_accuracy": float(filtered.mean()), "tn": float(1 - benign["adversarial"].mean()),
               "tn_filtered": _share(~benign["adversarial"], filtered), "filtered": int(filtered.sum())}
    runs = [(name, "direct", detector.classifier, spec) for name, spec in attacks.items()] if direct else []
    if source_model is not None:
        runs += [(name, "transfer", source_model, spec) for name, spec in attacks.items()]
    rows = {}
    for name, setting, model, spec in runs:
        x_adv = adversarial_examples(model, x, y, as_spec(spec), batch_size, detector.clip_min, detector.clip_max,
                                     progress)
        rows[f"{name} ({setting})"] = _rates(detector, x_adv, y, benign, correct, filtered, setting)
    for name, kwargs in (adaptive or {}).items():
        x_adv = np.concatenate([adaptive_attack(detector, x[i:i + batch_size], y[i:i + batch_size], **kwargs)
                                for i in range(0, len(y), batch_size)])
        rows[f"{name} (adaptive)"] = _rates(detector, x_adv, y, benign, correct, filtered, "adaptive")
    return DetectionReport(rows, summary)


def _rates(detector, x_adv, y, benign, correct, filtered, setting) -> dict:
    adversarial = detector.outputs(x_adv)
    fooled = correct & (adversarial["label"] != y)
    return {
        "setting": setting,
        "fooled": int(fooled.sum()),
        "fooled_rate": float(fooled.sum() / max(correct.sum(), 1)),
        "invariance": _share(adversarial["mask_label"] == benign["mask_label"], fooled),
        "tp": _share(adversarial["adversarial"], fooled),
        "tp_filtered": _share(adversarial["adversarial"], fooled & filtered),
        "recovery": _share(adversarial["mask_label"] == y, fooled),
        # the adaptive attack's figure: fooled and not flagged, among the correctly classified
        "evaded": float(np.sum(fooled & ~adversarial["adversarial"]) / max(correct.sum(), 1)),
    }
