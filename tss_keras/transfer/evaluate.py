"""Scores label transfer against masks: pseudo-label IoU, coverage, agnostic IoU, classifier mAP.

Used by the benchmarks and by self-calibration; never by training on weak
images (their masks are hidden from it).
"""

import dataclasses

import numpy as np

from tss_keras.constants import VOID_LABEL
from tss_keras.evaluation.confusion import confusion_matrix, mean_iou

MISSED_SHARE = 0.2  # a class whose pixels the agnostic map finds less often counts as missed


@dataclasses.dataclass
class PseudoLabelScore:
    """Accumulates pseudo-labels against ground truth in two ways.

    ``scored`` ignores void pseudo-labels (they count for nothing);
    ``strict`` counts a void pseudo-label as background, so abstaining on an
    object pixel is a miss. ``covered`` / ``labelled`` is the coverage: the
    share of ground-truth pixels (void excluded) given a class.
    """

    num_classes: int
    scored: np.ndarray = None
    strict: np.ndarray = None
    covered: int = 0
    labelled: int = 0

    def __post_init__(self):
        k = self.num_classes
        self.scored = np.zeros((k, k), np.int64) if self.scored is None else self.scored
        self.strict = np.zeros((k, k), np.int64) if self.strict is None else self.strict

    def add(self, prediction, truth):
        """Adds one image's pseudo-label [H, W] (255 void) and mask [H, W]."""
        prediction, truth = np.asarray(prediction), np.asarray(truth)
        self.scored += confusion_matrix(prediction, truth, self.num_classes)
        self.strict += confusion_matrix(np.where(prediction == VOID_LABEL, 0, prediction), truth,
                                        self.num_classes)
        labelled = truth != VOID_LABEL
        self.labelled += int(labelled.sum())
        self.covered += int((labelled & (prediction != VOID_LABEL)).sum())

    def summary(self, classes):
        """{miou, miou_void_as_background, coverage} over ``classes`` (ids)."""
        return {"miou": mean_iou(self.scored, classes),
                "miou_void_as_background": mean_iou(self.strict, classes),
                "coverage": self.covered / self.labelled if self.labelled else None}


def foreground_iou(probability, truth, threshold=0.5):
    """(intersection, union) of ``probability > threshold`` vs any-class pixels, void ignored."""
    truth = np.asarray(truth)
    valid = truth != VOID_LABEL
    predicted = (np.asarray(probability) > threshold) & valid
    actual = (truth > 0) & valid
    return int((predicted & actual).sum()), int((predicted | actual).sum())


def average_precision(scores, positives):
    """Average precision of one class's scores [N] against binary labels [N] (None if no positive)."""
    positives = np.asarray(positives, bool)
    if not positives.any():
        return None
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = positives[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(scores, labels):
    """mAP over the classes with at least one positive; scores, labels [N, K]."""
    aps = [average_precision(scores[:, k], labels[:, k]) for k in range(np.shape(labels)[1])]
    aps = [ap for ap in aps if ap is not None]
    return float(np.mean(aps)) if aps else None


CAM_ARGMAX = "cam_argmax"


class LNetHealth:
    """Accumulates how well an L-Net sees masked images: its classifier and its agnostic map.

    ``add`` takes one image's View (as label transfer sees it), its multi-hot
    labels and its mask (or None); ``summary`` gives {"classifier_map": mAP
    of the multi-label classifier, "chance_map": the mAP of random scores
    (each class's share of images), "agnostic_iou": IoU of the agnostic map
    (> 0.5) against all foreground, "found": {class id: share of that class's
    pixels the agnostic map calls foreground}} (None where nothing was there
    to measure). A classifier near chance makes CAMs useless, and a class
    whose pixels the agnostic map does not find gets little of its
    pseudo-labels, so the lnet stage reports both.
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.logits, self.targets = [], []
        self.intersection = self.union = 0
        self.found, self.present = np.zeros(num_classes), np.zeros(num_classes)

    def add(self, view, labels, truth=None):
        """One image: its View, multi-hot labels [K] and mask [H, W] (or None)."""
        import tensorflow as tf

        self.logits.append(view.logits.numpy()[0])
        self.targets.append(np.asarray(labels))
        if truth is None:
            return
        probability = tf.image.resize(view.foreground, truth.shape).numpy()[0, ..., 0]
        i, u = foreground_iou(probability, truth)
        self.intersection, self.union = self.intersection + i, self.union + u
        objects = (truth > 0) & (truth != VOID_LABEL)
        self.present += np.bincount(truth[objects], minlength=self.num_classes)
        self.found += np.bincount(truth[objects & (probability > 0.5)],
                                  minlength=self.num_classes)

    def summary(self):
        """The dict described in the class docstring."""
        targets = np.array(self.targets).reshape(-1, self.num_classes - 1)
        labelled = targets.any(axis=0)
        return {
            "classifier_map": (mean_average_precision(np.array(self.logits), targets)
                               if self.logits else None),
            "chance_map": float(targets[:, labelled].mean()) if labelled.any() else None,
            "agnostic_iou": self.intersection / self.union if self.union else None,
            "found": {c: float(self.found[c] / self.present[c])
                      for c in range(1, self.num_classes) if self.present[c]},
        }


def lnet_health(transfer, records, num_classes):
    """``LNetHealth`` summary of an L-Net on ``records`` (an eval split with full masks)."""
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.voc import read_image, read_mask

    health = LNetHealth(num_classes)
    for record in records:
        truth = read_mask(record.mask_path, num_classes) if record.mask_path else None
        health.add(transfer.view([read_image(record.image_path)]),
                   multi_hot(record.labels, num_classes), truth)
    return health.summary()


def missed_classes(found, classes, share=MISSED_SHARE):
    """The ids in ``classes`` whose share in ``found`` (``lnet_health``) is below ``share``."""
    return [c for c, found_share in found.items() if c in classes and found_share < share]


def evaluate_label_transfer(transfer, records, num_classes, variants, classes):
    """Scores label-transfer variants on masked records, given their true image labels.

    Args:
        transfer: a LabelTransfer (its L-Net runs once per image).
        records: VocRecords with masks (e.g. the weak pool, masks read only here).
        num_classes: K + 1.
        variants: {name: DiffusionParams, or CAM_ARGMAX for the CAM-only baseline}.
        classes: class ids the mIoU averages over (e.g. the weak classes).

    Returns:
        {"agnostic_iou", "classifier_map", and per variant {miou,
        miou_void_as_background, coverage}}, everything at each image's own size.
    """
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.voc import read_image, read_mask
    from tss_keras.transfer.diffusion import cam_argmax_labels

    scores = {name: PseudoLabelScore(num_classes) for name in variants}
    health = LNetHealth(num_classes)
    for record in records:
        truth = read_mask(record.mask_path, num_classes)
        labels = multi_hot(record.labels, num_classes)[None]
        view = transfer.view([read_image(record.image_path)])
        health.add(view, labels[0], truth)
        for name, params in variants.items():
            if params == CAM_ARGMAX:
                label = cam_argmax_labels(view.cams, labels, truth.shape).numpy()[0]
            else:
                label = transfer.labels(view, labels, [truth.shape], params)[0]
            scores[name].add(label, truth)
    summary = health.summary()
    result = {"agnostic_iou": summary["agnostic_iou"],
              "classifier_map": summary["classifier_map"]}
    result.update({name: score.summary(classes) for name, score in scores.items()})
    return result
