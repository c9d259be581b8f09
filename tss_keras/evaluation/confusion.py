"""Confusion matrices and the IoU numbers computed from them (VOC convention)."""

import numpy as np

from tss_keras.constants import VOID_LABEL


def confusion_matrix(prediction, target, num_classes):
    """[C, C] int64 counts (rows: target, columns: prediction); void targets ignored.

    Predictions equal to 255 (void pseudo-labels) count as no class: they add to
    neither a true positive nor a false positive, only to the target's row
    total through the ``missed`` column, which is dropped.
    """
    target = np.asarray(target).reshape(-1).astype(np.int64)
    prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
    keep = (target != VOID_LABEL) & (prediction != VOID_LABEL)
    index = target[keep] * num_classes + prediction[keep]
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion):
    """IoU per class [..., C] of confusion matrices [..., C, C]; NaN where a union is empty."""
    confusion = np.asarray(confusion, np.float64)
    intersection = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(-2) + confusion.sum(-1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / np.where(union > 0, union, 1), np.nan)


def mean_iou(confusion, classes=None):
    """Mean IoU over non-null classes (all, or the given class ids)."""
    iou = iou_per_class(confusion)
    if classes is not None:
        iou = iou[sorted(classes)]
    iou = iou[~np.isnan(iou)]
    return float(iou.mean()) if iou.size else None
