"""Attention analyses: how attacks shift Grad-CAM attention, pictures, and a training callback."""
from keras_attdef.analysis.attention_shift import AttentionShift, attention_shift
from keras_attdef.analysis.callbacks import AttentionIoUCallback
from keras_attdef.analysis.plots import attention_grid

__all__ = ["AttentionIoUCallback", "AttentionShift", "attention_grid", "attention_shift"]
