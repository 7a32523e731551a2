"""Results as data: schema-checked JSON per (experiment, model), their provenance, and generated tables."""
from keras_attdef.results.files import load_experiments, read_record, sha256, verify_weights, write_experiment, write_record
from keras_attdef.results.provenance import provenance
from keras_attdef.results.report import expected_files, render, stale, write_report
from keras_attdef.results.schema import SCHEMA_VERSION, validate, validate_experiment

__all__ = ["SCHEMA_VERSION", "expected_files", "load_experiments", "provenance", "read_record", "render", "sha256",
           "stale", "validate", "validate_experiment", "verify_weights", "write_experiment", "write_record",
           "write_report"]
