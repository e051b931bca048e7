"""Spec vocabulary shared by the model families: classifier tolerances and thresholds, the image input.

The spec types themselves (:class:`ExportSpec`, :class:`InputSpec`, :class:`Tolerance`) are part of the
artifact schema (:mod:`tdeploy.artifact.spec`); they are re-exported here for the families.
"""

from __future__ import annotations

from tdeploy.artifact.spec import ExportSpec, InputSpec, Task, Tolerance

__all__ = ["CLASSIFIER_THRESHOLDS", "CLASSIFIER_TOLERANCES", "IMAGENET_MEAN", "IMAGENET_STD", "ExportSpec", "InputSpec",
           "Task", "Tolerance", "image_input"]

# timm's ImageNet normalisation (ViT, Swin and NAT/DiNAT checkpoints are trained with it).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Classifier logits in ONNX Runtime against FP32 PyTorch, measured on each family's smallest variant at
# three sizes (random weights, |logits| < 1): FP32 max 9e-7, FP16 (norms/softmax kept in FP32) max 5.2e-4.
# Trained checkpoints have logits ~10-20x larger, and the errors grow with them: the tolerances are ~5x
# the measurement at that scale. INT8 Q/DQ moves logits by up to ~1e-2 on random weights. The top-1
# agreement thresholds are what a user can expect on real images (docs/accuracy.md).
CLASSIFIER_TOLERANCES = {
    "fp32": {"": Tolerance(atol=1e-4, rtol=1e-4)},
    "fp16": {"": Tolerance(atol=1e-2, rtol=1e-2)},
    "int8": {"": Tolerance(atol=5e-1, rtol=2e-1)},
}
CLASSIFIER_THRESHOLDS = {"fp32": 1.0, "fp16": 0.99, "int8": 0.9}


def image_input(in_chans: int, img_size: int, name: str = "pixel_values") -> InputSpec:
    """(batch, C, height, width) image input, example at the training size."""
    return InputSpec(name, ("batch", in_chans, "height", "width"), example=(1, in_chans, img_size, img_size))
