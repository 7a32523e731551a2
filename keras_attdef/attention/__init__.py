"""Attention maps as TF functions: Grad-CAM, activation attention, areas, masks and IoU."""
from keras_attdef.attention.areas import activation_attention, attention_area, hard_mask, iou, top_k_cells
from keras_attdef.attention.gradcam import ACTIVATIONS, CAM_METHODS, activate, empty_map_rate, grad_cam, normalize_maps
from keras_attdef.attention.split import split_model

__all__ = ["ACTIVATIONS", "CAM_METHODS", "activate", "activation_attention", "attention_area", "empty_map_rate", "grad_cam", "hard_mask", "iou", "normalize_maps",
           "split_model", "top_k_cells"]
