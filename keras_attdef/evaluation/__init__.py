"""Robustness you can trust: per-attack tables, the AutoAttack-style cascade, transfer, a masking audit, reports.

`evaluate` is the one call (suite, curves, landscape, audit -> Markdown, JSON, PNG); `autoattack` the
efficient cascade for one number; `evaluate_robustness` a table for any attacks you name.
"""
from keras_attdef.evaluation.audit import Flag, curve_checks, model_checks
from keras_attdef.evaluation.autoattack import AutoAttackResult, autoattack, suite
from keras_attdef.evaluation.report import EvaluationReport, evaluate, loss_landscape, suite_attacks, transfer_accuracy
from keras_attdef.evaluation.robustness import RobustnessReport, default_attacks, evaluate_robustness

__all__ = ["AutoAttackResult", "EvaluationReport", "Flag", "RobustnessReport", "autoattack", "curve_checks",
           "default_attacks", "evaluate", "evaluate_robustness", "loss_landscape", "model_checks", "suite",
           "suite_attacks", "transfer_accuracy"]
