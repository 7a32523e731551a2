"""How attacks move Grad-CAM attention: the AAD paper's Tables 3 and 4 for any model and attack.

Example:

>>> from keras_attdef import analysis, attacks, models
>>> # table = analysis.attention_shift(model, x, y, attacks.AttackSpec("step_ll", eps=0.15))
>>> # print(table.to_markdown())
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import tensorflow as tf

from keras_attdef.attacks import engine
from keras_attdef.attacks.spec import as_spec
from keras_attdef.attention.areas import iou, top_k_cells
from keras_attdef.attention.gradcam import grad_cam
from keras_attdef.models import last_conv_layer
from keras_attdef.tables import markdown_table, percent

DEFAULT_CELLS = (5, 10, 20, 30)


@dataclasses.dataclass
class AttentionShift:
    """Average IoU of top-k attention cells between clean and adversarial images.

    Attributes:
        cells: the k values.
        succeeded: `{k: mean IoU}` over attacks that changed a correct prediction.
        failed: `{k: mean IoU}` over attacks that did not.
        fraction_succeeded: share of correctly classified images the attack fooled.
        rounds: per attack round, `(fraction succeeded, IoU succeeded, fraction failed, IoU failed)` at
            `round_cells` cells (Table 4), when rounds were asked for.
        num_images: correctly classified images analysed.
        empty_maps: share of those images whose clean or (first-round) adversarial Grad-CAM map is all
            zero; their IoU is undefined and left out of the means (a model whose maps collapse, e.g.
            under AAD's preservation term, would otherwise read IoU 1.0: equal top-k cells of two zero maps).
    """

    cells: tuple
    succeeded: dict
    failed: dict
    fraction_succeeded: float
    num_images: int
    rounds: list = dataclasses.field(default_factory=list)
    round_cells: int = 10
    empty_maps: float = 0.0

    def to_markdown(self) -> str:
        lines = [f"Attack fooled {percent(self.fraction_succeeded, 1)} of {self.num_images} correctly classified "
                 "images.", "", markdown_table(["#cells", "IoU (attack succeeded)", "IoU (attack failed)"],
                                               [[k, _fmt(self.succeeded[k]), _fmt(self.failed[k])] for k in self.cells])]
        if self.empty_maps:
            lines += ["", f"{percent(self.empty_maps, 1)} of the images have an all-zero Grad-CAM map (clean or "
                          "adversarial): their IoU is undefined and left out."]
        if self.rounds:
            lines += ["", f"Per attack round ({self.round_cells} cells):", "",
                      markdown_table(["round", "succeeded", "IoU", "failed", "IoU"],
                                     [[r + 1, percent(s, 1), _fmt(si), percent(f, 1), _fmt(fi)]
                                      for r, (s, si, f, fi) in enumerate(self.rounds)])]
        return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def _mean(values, mask):
    """Mean IoU over `mask`, leaving out undefined (NaN: empty-map) pairs."""
    values = values[mask]
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _empty(maps) -> np.ndarray:
    """Per map, True when it is zero everywhere (Grad-CAM's ReLU removed every cell)."""
    return (tf.reduce_max(tf.reshape(maps, [tf.shape(maps)[0], -1]), axis=-1) <= 0).numpy()


def attention_shift(model, x, y, attack, layer: str | None = None, cells=DEFAULT_CELLS, rounds: int = 0,
                    round_cells: int = 10, batch_size: int = 256) -> AttentionShift:
    """Splits correctly classified images by attack success and averages attention IoU (Tables 3-4).

    Args:
        model: a functional classifier returning logits.
        x: images.
        y: labels.
        attack: an `AttackSpec` (or its dict / name).
        layer: Grad-CAM layer (default the topmost conv layer).
        cells: k values for the top-k attention areas.
        rounds: if > 0, also apply the attack this many times in a row (each round on the previous
            round's output, inside the attack's eps around x times the round number) and report each round.
        round_cells: k for the per-round table.
        batch_size: batch size.

    Returns:
        An `AttentionShift`.
    """
    spec = as_spec(attack)
    layer = layer or last_conv_layer(model)
    x = np.asarray(x, np.float32)
    y = np.asarray(y).reshape(-1).astype(np.int32)
    per_round = max(int(rounds), 1)
    ious = {r: {k: [] for k in cells} for r in range(per_round)}
    fooled = {r: [] for r in range(per_round)}
    kept, empty = [], []
    for start in range(0, len(x), batch_size):
        xb, yb = tf.constant(x[start:start + batch_size]), tf.constant(y[start:start + batch_size])
        clean_maps, logits = grad_cam(model, xb, layer, return_logits=True)
        correct = (tf.argmax(logits, -1, output_type=tf.int32) == yb).numpy()
        kept.append(correct)
        current = xb
        for r in range(per_round):
            current = spec(model, current, yb)
            if r > 0 and "eps" in spec.kwargs:
                current = engine.project(current, xb, spec.eps * (r + 1), "linf", 0.0, 1.0)
            adv_maps, adv_logits = grad_cam(model, current, layer, return_logits=True)
            fooled[r].append((tf.argmax(adv_logits, -1, output_type=tf.int32) != yb).numpy())
            undefined = _empty(clean_maps) | _empty(adv_maps)
            if r == 0:
                empty.append(undefined)
            for k in cells if r == 0 else sorted(set(cells) | {round_cells}):
                value = iou(top_k_cells(clean_maps, k), top_k_cells(adv_maps, k)).numpy().astype(np.float64)
                ious[r].setdefault(k, []).append(np.where(undefined, np.nan, value))
    correct = np.concatenate(kept)
    results = []
    for r in range(per_round):
        success = np.concatenate(fooled[r])[correct]
        values = {k: np.concatenate(v)[correct] for k, v in ious[r].items()}
        results.append((success, values))
    success, values = results[0]
    shift = AttentionShift(tuple(cells), {k: _mean(values[k], success) for k in cells},
                           {k: _mean(values[k], ~success) for k in cells}, float(success.mean()) if len(success) else 0.0,
                           int(correct.sum()), round_cells=round_cells,
                           empty_maps=float(np.concatenate(empty)[correct].mean()) if correct.any() else 0.0)
    if shift.empty_maps:
        warnings.warn(f"{percent(shift.empty_maps, 1)} of the images have an all-zero Grad-CAM map at {layer!r}; "
                      "their attention IoU is undefined and left out of the means.", RuntimeWarning, stacklevel=2)
    if rounds:
        shift.rounds = [(float(s.mean()), _mean(v[round_cells], s), float((~s).mean()), _mean(v[round_cells], ~s))
                        for s, v in results]
    return shift
