"""One evaluation split across workers or machines: shards measured apart, merged into the whole's report.

Shard `I/N` holds a contiguous run of whole batches (the batches split as evenly as they go), so with the
same seed and batch size its per-point outcomes equal the unsplit run's on those points (every batch
restarts the attacks' random streams, see `evaluate_robustness`). Each shard writes a partial report: its
points' outcomes for every row, the settings, and a fingerprint of the model's weights. `merge` checks
that the partials come from one model and one set of settings and cover every point exactly once, then
builds the report an unsplit run gives. The model checks and the loss landscape use the first points, so
every shard measures them on the whole evaluation's first points (the merge takes shard 0's).

Example (a job array of 4 tasks, then one merge):

    keras-attdef evaluate model.keras --shard $TASK/4 --out parts/$TASK    # TASK = 0, 1, 2, 3
    keras-attdef merge parts/*/partial.json --out report/
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from keras_attdef.evaluation.report import EvaluationReport, assemble, measure
from keras_attdef.evaluation.adaptive import map_term_defense
from keras_attdef.evaluation.audit import Flag
from keras_attdef.inputs import check_inputs
from keras_attdef.models import unwrap
from keras_attdef.results.provenance import running_commit

KIND = "keras_attdef.partial_report"
VERSION = 1
# Settings every partial of one evaluation must share.
SHARED = ("model", "label", "eps", "norm", "suite", "seed", "batch_size", "num_points", "shards", "eps_fractions",
          "steps_grid", "attacks", "precision")


def parse_shard(text: str) -> tuple[int, int]:
    """`"I/N"` -> `(I, N)`, with 0 <= I < N."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"A shard is written I/N (the I-th of N, counting from 0), got {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"Shard {text!r}: I must be in 0..N-1 and N >= 1 (e.g. 0/4 ... 3/4).")
    return index, count


def shard_range(num_points: int, batch_size: int, index: int, count: int) -> tuple[int, int]:
    """The `[start, stop)` of shard `index` of `count`: whole batches, split as evenly as they go."""
    batches = -(-num_points // batch_size)
    if count > batches:
        raise ValueError(f"{count} shards of {num_points} points in batches of {batch_size} would leave some "
                         f"empty: use at most {batches} shards or a smaller --batch-size.")
    first, last = index * batches // count, (index + 1) * batches // count
    return first * batch_size, min(last * batch_size, num_points)


def model_fingerprint(model) -> str:
    """SHA-256 of the model's weights (partials of different models must not be merged)."""
    digest = hashlib.sha256()
    for weight in unwrap(model).weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()


def evaluate_shard(model, x, y, eps: float, shard: str, label: str = "model", **settings) -> dict:
    """Measures shard `"I/N"` of the points `(x, y)` (all of them: the shard picks its slice); returns the partial.

    Args:
        model: the classifier.
        x: every image of the evaluation (the same on every worker).
        y: their labels.
        eps: the budget.
        shard: `"I/N"`.
        label: the model's name in the report.
        **settings: `norm`, `suite`, `batch_size`, `seed`, `eps_fractions`, `steps_grid`, `progress`, `precision` as in
            `evaluate` (no `source_model`: transfer rows are not split).

    Returns:
        The partial report as a JSON-ready dict (`save_partial` writes it).
    """
    start_time = time.time()
    index, count = parse_shard(shard)
    base = unwrap(model)
    x, y = check_inputs(base, x, y)
    batch_size = settings.setdefault("batch_size", 500)
    start, stop = shard_range(len(y), batch_size, index, count)
    outcomes = measure(base, x[start:stop], y[start:stop], eps, first_points=(x, y), defense=map_term_defense(model),
                       **settings)
    outcomes["correct"] = {n: "".join("1" if v else "0" for v in c) for n, c in outcomes["correct"].items()}
    outcomes["model_checks"] = {n: {"raised": f.raised, "detail": f.detail} for n, f in outcomes["model_checks"].items()}
    return {"kind": KIND, "version": VERSION, "model": model_fingerprint(base), "label": label,
            "commit": running_commit(),  # the code that measured it, for a published merge
            "num_points": len(y), "shard": index, "shards": count, "start": start, "stop": stop,
            "seconds": time.time() - start_time, **outcomes}


def save_partial(partial: dict, out) -> Path:
    """Writes the partial to `out/partial.json`; returns the path."""
    path = Path(out) / "partial.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(partial))
    return path


def load_partial(path) -> dict:
    """A partial report read and checked (`kind`, `version`), with its `path`."""
    try:
        partial = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable partial report ({error}).") from None
    if partial.get("kind") != KIND or partial.get("version") != VERSION:
        raise ValueError(f"{path}: not a version-{VERSION} partial report of `keras-attdef evaluate --shard`.")
    partial["path"] = str(path)
    return partial


def _check_compatible(partials: list) -> None:
    first = partials[0]
    for partial in partials[1:]:
        for key in SHARED:
            if partial.get(key) != first.get(key):  # `precision` is absent from older partials
                what = "models (their weights differ)" if key == "model" else f"settings ({key}: " \
                       f"{first.get(key)!r} against {partial.get(key)!r})"
                raise ValueError(f"{first['path']} and {partial['path']} are partials of different {what}: "
                                 "merge only the shards of one `--shard I/N` evaluation.")


def _check_coverage(partials: list) -> list:
    partials = sorted(partials, key=lambda p: p["start"])
    expected = 0
    for partial in partials:
        if partial["start"] < expected:
            raise ValueError(f"{partial['path']} (points {partial['start']}-{partial['stop']}) overlaps another "
                             f"partial (shard {partial['shard']} given twice?).")
        if partial["start"] > expected:
            raise ValueError(f"Points {expected}-{partial['start']} are in no partial: a shard is missing.")
        expected = partial["stop"]
    if expected != partials[0]["num_points"]:
        raise ValueError(f"Points {expected}-{partials[0]['num_points']} are in no partial: a shard is missing.")
    return partials


def merge(paths) -> EvaluationReport:
    """Joins the partial reports of one sharded evaluation into the report of the whole.

    Raises:
        ValueError: partials of different models, settings or point sets; overlapping or missing shards.
    """
    partials = [load_partial(path) for path in paths]
    if not partials:
        raise ValueError("No partial reports given.")
    _check_compatible(partials)
    partials = _check_coverage(partials)
    first = partials[0]
    outcomes = {key: first[key] for key in ("eps", "norm", "suite", "seed", "batch_size", "eps_fractions",
                                            "steps_grid", "attacks", "black_box", "single_step", "landscape")}
    outcomes["precision"] = first.get("precision", "float32")
    outcomes["correct"] = {row: np.array([c == "1" for p in partials for c in p["correct"][row]])
                           for row in first["correct"]}
    outcomes["model_checks"] = {n: Flag(**f) for n, f in first["model_checks"].items()}
    report = assemble(outcomes, first["label"], sum(p["seconds"] for p in partials))
    return report
