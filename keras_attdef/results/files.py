"""Reading and writing the `results/` tree: `<experiment>/experiment.json` and one `<model>.json` per model.

Example:

>>> import tempfile, pathlib
>>> from keras_attdef.results.schema import example_record
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> path = write_record(root, example_record())
>>> path.relative_to(root).as_posix()
'example/madry.json'
>>> read_record(path)["accuracy"]["worst case"]
0.883
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from keras_attdef.results.schema import validate, validate_experiment

EXPERIMENT_FILE = "experiment.json"


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(partial, path)  # atomic: a killed run never leaves half a file
    return path


def write_record(root, record: dict) -> Path:
    """Validates `record` and writes it to `root/<experiment>/<model>.json`; returns the path."""
    validate(record)
    return _write_json(Path(root) / record["experiment"] / f"{record['model']}.json", record)


def write_experiment(root, meta: dict) -> Path:
    """Validates an experiment's description and writes `root/<experiment>/experiment.json`."""
    validate_experiment(meta)
    return _write_json(Path(root) / meta["experiment"] / EXPERIMENT_FILE, meta)


def read_record(path) -> dict:
    """A record from its file, validated (ValueError names the file and the problem)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        validate(record)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return record


def load_experiments(root) -> dict:
    """`{experiment: (meta, [records in the experiment's order])}` for every folder under `root`, validated."""
    experiments = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and (p / EXPERIMENT_FILE).exists()):
        meta = json.loads((folder / EXPERIMENT_FILE).read_text())
        validate_experiment(meta)
        records = [read_record(p) for p in sorted(folder.glob("*.json")) if p.name != EXPERIMENT_FILE]
        for record in records:
            if record["experiment"] != meta["experiment"]:
                raise ValueError(f"{folder}/{record['model']}.json names experiment {record['experiment']!r}, "
                                 f"its folder {meta['experiment']!r}.")
        order = {name: i for i, name in enumerate(meta.get("order", []))}
        records.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"]))
        experiments[meta["experiment"]] = (meta, records)
    return experiments


def sha256(path) -> str:
    """The SHA-256 of a file, hex (for the `weights` entry of a record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(record: dict, root=".") -> Path:
    """The path of a record's weights after checking their SHA-256; ValueError when they differ or are missing."""
    if not record.get("weights"):
        raise ValueError(f"{record['model']}: no weights are published; regenerate them with "
                         f"`{record['provenance']['command']}`.")
    path = Path(root) / record["weights"]["path"]
    if not path.exists():
        raise ValueError(f"{path} is missing; regenerate it with `{record['provenance']['command']}`.")
    if sha256(path) != record["weights"]["sha256"]:
        raise ValueError(f"{path}: SHA-256 differs from the record's; the file is not the published model.")
    return path
