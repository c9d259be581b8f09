"""Evaluation: confusion matrices, IoU (VOC convention), results.json."""

from tss_keras.evaluation.confusion import confusion_matrix, iou_per_class, mean_iou
from tss_keras.evaluation.evaluator import evaluate_confusion

__all__ = ["confusion_matrix", "evaluate_confusion", "iou_per_class", "mean_iou"]
