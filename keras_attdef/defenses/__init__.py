"""Defences: config objects with `perturb` and `loss_terms`, and the preset registry with the papers' defaults."""
from keras_attdef.defenses.aad import AttentionRectificationPreservation
from keras_attdef.defenses.adversarial_training import AdversarialTraining, PlainTraining
from keras_attdef.defenses.attention_pairing import ActivationAttentionPairing, AttentionTransfer
from keras_attdef.defenses.attention_regularized import AttentionRegularized
from keras_attdef.defenses.base import (
    Defense, DefenseOutput, deserialize, register_defense, registered_defenses, serialize,
)
from keras_attdef.defenses.certified_training import CertifiedTraining, flow_training_radius
from keras_attdef.defenses.pairing import LogitPairing, Trades
from keras_attdef.defenses.presets import (
    PRESETS, Preset, aad, aad_pgd, alp, at_alp, atat, attention_trades, certified, fast, get, madry, plain, register_preset, trades,
)

__all__ = [
    "ActivationAttentionPairing", "AdversarialTraining", "AttentionRectificationPreservation", "AttentionRegularized",
    "AttentionTransfer",
    "CertifiedTraining", "Defense", "DefenseOutput", "LogitPairing", "PRESETS", "PlainTraining", "Preset", "Trades",
    "aad", "aad_pgd", "alp", "at_alp", "atat", "attention_trades", "certified", "deserialize", "fast", "flow_training_radius", "get",
    "madry", "plain", "register_defense", "register_preset", "registered_defenses", "serialize", "trades",
]
