"""Robustness you can trust: per-attack tables, the AutoAttack-style cascade, transfer, a masking audit, reports.

`evaluate` is the one call (suite, curves, landscape, audit -> Markdown, JSON, PNG; for a `RobustModel`
whose defence has a map term, also the map-adaptive attack); `autoattack` the efficient cascade for one
number; `evaluate_robustness` a table for any attacks you name.
"""
from keras_attdef.evaluation.adaptive import map_adaptive_attack, map_gradient_check
from keras_attdef.evaluation.audit import Flag, curve_checks, model_checks
from keras_attdef.evaluation.autoattack import AutoAttackResult, autoattack
from keras_attdef.evaluation.report import EvaluationReport, evaluate, loss_landscape, transfer_accuracy
from keras_attdef.evaluation.robustness import RobustnessReport, evaluate_robustness
from keras_attdef.evaluation.suites import cascade_parts, pgd_table, suite_attacks

__all__ = ["AutoAttackResult", "EvaluationReport", "Flag", "RobustnessReport", "autoattack", "cascade_parts",
           "curve_checks", "evaluate", "evaluate_robustness", "loss_landscape", "map_adaptive_attack",
           "map_gradient_check", "model_checks", "pgd_table",
           "suite_attacks", "transfer_accuracy"]
