"""Adversarial-input detection: the Latent Attention Network detector of the thesis (section 3).

`LatentAttentionDetector` flags an input when the classifier's label and the label of its LAN attention
mask disagree; `detection_report` measures it in the shape of the thesis's Tables 1-4, with an adaptive
attack beside the plain ones.
"""
from keras_attdef.detect.detector import LatentAttentionDetector, NotFittedError
from keras_attdef.detect.adaptive import adaptive_attack
from keras_attdef.detect.evaluation import DetectionReport, detection_report
from keras_attdef.detect.lan import BitDepthReduction, MedianSmoothing, corrupt, lan_loss, mask_generator

__all__ = ["BitDepthReduction", "DetectionReport", "LatentAttentionDetector", "MedianSmoothing", "NotFittedError", "adaptive_attack", "corrupt",
           "detection_report", "lan_loss", "mask_generator"]
