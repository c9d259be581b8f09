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

    def merge(self, other):
        """Adds another PseudoLabelScore's counts to this one."""
        self.scored += other.scored
        self.strict += other.strict
        self.covered += other.covered
        self.labelled += other.labelled

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


PRIOR_GRID = 32  # cells per side of the position prior, in coordinates relative to the image
PRIOR_THRESHOLDS = np.linspace(0.0, 0.95, 20)


class PositionPrior:
    """Where foreground usually is, from masks alone: the trivial map an agnostic head must beat.

    ``fit`` averages masks' foreground on a ``PRIOR_GRID`` square grid of
    coordinates relative to each image (void cells excluded) and keeps the
    threshold of that frequency that scores the best foreground IoU on the
    same masks. Threshold 0 calls every pixel foreground, so the prior is at
    least as good as that. It never looks at an image.
    """

    def __init__(self, frequency, threshold):
        self.frequency = np.asarray(frequency, np.float32)
        self.threshold = float(threshold)

    @classmethod
    def fit(cls, masks):
        """A PositionPrior from masks [H, W] (uint8 class ids, 255 void); at least one."""
        cells = []
        for mask in masks:
            rows = (np.arange(PRIOR_GRID) + 0.5) * mask.shape[0] / PRIOR_GRID
            cols = (np.arange(PRIOR_GRID) + 0.5) * mask.shape[1] / PRIOR_GRID
            cells.append(np.asarray(mask)[rows.astype(int)][:, cols.astype(int)])
        if not cells:
            raise ValueError("PositionPrior.fit needs at least one mask")
        cells = np.stack(cells)
        valid, foreground = cells != VOID_LABEL, (cells > 0) & (cells != VOID_LABEL)
        frequency = foreground.sum(0) / np.maximum(valid.sum(0), 1)

        def iou(threshold):
            predicted = (frequency >= threshold)[None] & valid
            return (predicted & foreground).sum() / max((predicted | foreground).sum(), 1)

        return cls(frequency, max(PRIOR_THRESHOLDS, key=iou))

    def predict(self, shape):
        """The prior's foreground [H, W] (bool) for an image of ``shape`` (H, W)."""
        rows = np.minimum((np.arange(shape[0]) * PRIOR_GRID) // shape[0], PRIOR_GRID - 1)
        cols = np.minimum((np.arange(shape[1]) * PRIOR_GRID) // shape[1], PRIOR_GRID - 1)
        return (self.frequency >= self.threshold)[rows][:, cols]


def fit_position_prior(examples, num_classes, limit=500):
    """A PositionPrior from the masks of up to ``limit`` examples (anything with ``mask_path``)."""
    from tss_keras.data.voc import read_mask

    return PositionPrior.fit([read_mask(e.mask_path, num_classes) for e in examples[:limit]])


CAM_ARGMAX = "cam_argmax"


class LNetHealth:
    """Accumulates how well an L-Net sees masked images: its classifier and its agnostic map.

    ``add`` takes one image's View (as label transfer sees it), its multi-hot
    labels and its mask (or None); ``summary`` gives {"classifier_map": mAP
    of the multi-label classifier, "chance_map": the mAP of random scores
    (each class's share of images), "agnostic_iou": IoU of the agnostic map
    (> 0.5) against all foreground, "prior_iou": the same IoU of a
    ``PositionPrior`` (given one; else None), "found": {class id: share of
    that class's pixels the agnostic map calls foreground}} (None where
    nothing was there to measure). A classifier near chance makes CAMs useless, and a class
    whose pixels the agnostic map does not find gets little of its
    pseudo-labels, so the lnet stage reports both.
    """

    def __init__(self, num_classes, prior=None):
        self.num_classes = num_classes
        self.prior = prior
        self.logits, self.targets = [], []
        self.intersection = self.union = 0
        self.prior_intersection = self.prior_union = 0
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
        if self.prior is not None:
            i, u = foreground_iou(self.prior.predict(truth.shape), truth)
            self.prior_intersection, self.prior_union = (self.prior_intersection + i,
                                                         self.prior_union + u)
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
            "prior_iou": self.prior_intersection / self.prior_union if self.prior_union else None,
            "found": {c: float(self.found[c] / self.present[c])
                      for c in range(1, self.num_classes) if self.present[c]},
        }


def lnet_health(transfer, records, num_classes, prior=None):
    """``LNetHealth`` summary of an L-Net on ``records`` (an eval split with full masks).

    With a ``PositionPrior``, the summary's ``prior_iou`` is its IoU on the same masks.
    """
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.voc import read_image, read_mask

    health = LNetHealth(num_classes, prior)
    for record in records:
        truth = read_mask(record.mask_path, num_classes) if record.mask_path else None
        health.add(transfer.view([read_image(record.image_path)]),
                   multi_hot(record.labels, num_classes), truth)
    return health.summary()


def missed_classes(found, classes, share=MISSED_SHARE):
    """The ids in ``classes`` whose share in ``found`` (``lnet_health``) is below ``share``."""
    return [c for c, found_share in found.items() if c in classes and found_share < share]


def evaluate_label_transfer(transfer, records, num_classes, variants, classes, prior=None):
    """Scores label-transfer variants on masked records, given their true image labels.

    Args:
        transfer: a LabelTransfer (its L-Net runs once per image).
        records: VocRecords with masks (e.g. the weak pool, masks read only here).
        num_classes: K + 1.
        variants: {name: DiffusionParams, or CAM_ARGMAX for the CAM-only baseline}.
        classes: class ids the mIoU averages over (e.g. the weak classes).
        prior: a PositionPrior whose foreground IoU is reported next to the
            agnostic map's (``prior_iou``), or None.

    Returns:
        {"agnostic_iou", "prior_iou", "classifier_map", "chance_map" (the mAP of
        random scores), and per variant {miou,
        miou_void_as_background, coverage}}, everything at each image's own size.
    """
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.voc import read_image, read_mask
    from tss_keras.transfer.diffusion import cam_argmax_labels

    scores = {name: PseudoLabelScore(num_classes) for name in variants}
    health = LNetHealth(num_classes, prior)
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
    result = {key: summary[key]
              for key in ("agnostic_iou", "prior_iou", "classifier_map", "chance_map")}
    result.update({name: score.summary(classes) for name, score in scores.items()})
    return result
