"""Defences: config objects with `perturb` and `loss_terms`, and presets with the papers' defaults."""
from keras_attdef.defenses.aad import AttentionRectificationPreservation
from keras_attdef.defenses.adversarial_training import AdversarialTraining, PlainTraining
from keras_attdef.defenses.attention_pairing import ActivationAttentionPairing, AttentionTransfer
from keras_attdef.defenses.base import Defense, DefenseOutput, deserialize, register_defense, serialize
from keras_attdef.defenses.certified_training import CertifiedTraining, flow_training_radius
from keras_attdef.defenses.pairing import LogitPairing, Trades
from keras_attdef.defenses.presets import (
    PRESETS, aad, alp, at_alp, atat, certified, fast, get, madry, plain, trades,
)

__all__ = [
    "ActivationAttentionPairing", "AttentionRectificationPreservation", "AttentionTransfer", "aad", "at_alp",
    "atat", "AdversarialTraining", "CertifiedTraining", "certified", "flow_training_radius", "Defense",
    "DefenseOutput", "LogitPairing", "PRESETS", "PlainTraining", "Trades",
    "alp", "deserialize", "fast", "get", "madry", "plain", "register_defense", "serialize", "trades",
]
