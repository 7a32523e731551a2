"""The result schema: one JSON file per (experiment, model), checked before it is written or read.

A published figure is a record under `results/<experiment>/<model>.json`, beside the experiment's
`experiment.json` (its title, protocol and command). Tables in `docs/` and the README are generated from
these files (`keras-attdef report`), never typed by hand.

Example:

>>> record = example_record()
>>> validate(record)
>>> bad = dict(record, accuracy={"clean": 1.7})
>>> validate(bad)
Traceback (most recent call last):
...
ValueError: madry: accuracy['clean'] = 1.7 is not a fraction in [0, 1]; ...
"""
from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

# field -> (types, required). Nested dicts are checked by the functions below.
_OPTIONAL_DICT = (dict, type(None))
RECORD_FIELDS = {
    "schema_version": (int, True), "experiment": (str, True), "model": (str, True), "dataset": (str, True),
    "n": (int, True), "threat": (dict, True), "evaluation": (str, True), "accuracy": (dict, True),
    "headline": (str, True), "audit_flags": (list, True), "training": (_OPTIONAL_DICT, True),
    "metrics": (dict, False), "reference": (_OPTIONAL_DICT, False), "weights": (_OPTIONAL_DICT, False),
    "provenance": (dict, True),
}
EXPERIMENT_FIELDS = {
    "schema_version": (int, True), "experiment": (str, True), "title": (str, True), "protocol": (str, True),
    "command": (str, True), "columns": (list, True), "order": (list, False),
}
PROVENANCE_REQUIRED = ("commit", "command", "seed", "packages", "machine", "created")
TRAINING_REQUIRED = ("preset", "architecture", "epochs", "train_seconds")
FIX = "fix the file or regenerate it with the command in its provenance"


def _check_fields(name: str, data: dict, fields: dict) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{name}: a result must be a JSON object, got {type(data).__name__}.")
    for key, (types, required) in fields.items():
        if key not in data:
            if required:
                raise ValueError(f"{name}: missing field {key!r}; {FIX}.")
            continue
        if not isinstance(data[key], types):
            raise ValueError(f"{name}: field {key!r} has type {type(data[key]).__name__}; {FIX}.")
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)} (schema version {SCHEMA_VERSION}); {FIX}.")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"{name}: schema_version {data['schema_version']}, this library reads {SCHEMA_VERSION}.")


def _check_fraction(name: str, where: str, value: Any) -> None:
    if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: {where} = {value!r} is not a fraction in [0, 1]; {FIX}.")


def validate(record: dict) -> None:
    """Raises ValueError naming the first problem of a result record; returns None when it is valid."""
    name = record.get("model", "<no model>") if isinstance(record, dict) else "<record>"
    if isinstance(record, dict):
        for key, value in record.get("accuracy", {}).items() if isinstance(record.get("accuracy"), dict) else ():
            _check_fraction(name, f"accuracy[{key!r}]", value)
    _check_fields(name, record, RECORD_FIELDS)
    if record["n"] <= 0:
        raise ValueError(f"{name}: n = {record['n']} must be positive; {FIX}.")
    if "clean" not in record["accuracy"] or record["headline"] not in record["accuracy"]:
        raise ValueError(f"{name}: accuracy needs 'clean' and the headline row {record['headline']!r}; {FIX}.")
    if set(record["threat"]) != {"norm", "eps"} or record["threat"]["norm"] not in ("linf", "l2"):
        raise ValueError(f"{name}: threat must be {{'norm': 'linf' | 'l2', 'eps': number}}; {FIX}.")
    missing = [k for k in PROVENANCE_REQUIRED if k not in record["provenance"]]
    if missing or not record["provenance"].get("commit") or not record["provenance"].get("command"):
        raise ValueError(f"{name}: provenance needs {list(PROVENANCE_REQUIRED)} with a commit and a command "
                         f"(missing or empty: {missing or ['commit/command']}); {FIX}.")
    if record["training"] is not None and any(k not in record["training"] for k in TRAINING_REQUIRED):
        raise ValueError(f"{name}: training needs {list(TRAINING_REQUIRED)}; {FIX}.")
    weights = record.get("weights")
    if weights is not None and (not weights.get("path") or len(str(weights.get("sha256", ""))) != 64):
        raise ValueError(f"{name}: weights need a path and a sha256 checksum; {FIX}.")


def validate_experiment(meta: dict) -> None:
    """Raises ValueError naming the first problem of an `experiment.json`."""
    _check_fields(meta.get("experiment", "<experiment>") if isinstance(meta, dict) else "<experiment>", meta,
                  EXPERIMENT_FIELDS)


def example_record(**changes) -> dict:
    """A small valid record (for docs and tests); keyword arguments replace fields."""
    record = {
        "schema_version": SCHEMA_VERSION, "experiment": "example", "model": "madry", "dataset": "mnist", "n": 1000,
        "threat": {"norm": "linf", "eps": 0.3}, "evaluation": "AutoAttack-style (standard)",
        "accuracy": {"clean": 0.985, "worst case": 0.883}, "headline": "worst case", "audit_flags": [],
        "training": {"preset": "madry", "architecture": "lenet", "epochs": 5, "train_seconds": 4835.8},
        "metrics": {}, "weights": None,
        "provenance": {"commit": "0" * 40, "command": "keras-attdef reproduce", "seed": 0, "packages": {},
                       "machine": {}, "created": "2026-12-05T20:53:44+00:00"},
    }
    record.update(changes)
    return record
