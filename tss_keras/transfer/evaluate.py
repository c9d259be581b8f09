"""Scores L-Net label transfer directly against masks (benchmarks, not training)."""

import numpy as np

from tss_keras.data.pipeline import multi_hot
from tss_keras.data.voc import read_image, read_mask
from tss_keras.evaluation.confusion import confusion_matrix
from tss_keras.transfer.pseudo_labels import LabelTransfer


def label_transfer_confusion(lnet, records, num_classes, diffusion):
    """Confusion of L-Net + diffusion given each image's true label set.

    The records need masks (a fully annotated split): labels are read from
    them, as a user would supply image-level labels. Void pseudo-labels count
    as background, so abstaining is not rewarded.
    """
    transfer = LabelTransfer(lnet, num_classes, diffusion)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for record in records:
        image = read_image(record.image_path).astype(np.float32)[None]
        label = transfer(image, multi_hot(record.labels, num_classes)[None])[0]
        label[label == 255] = 0
        confusion += confusion_matrix(label, read_mask(record.mask_path, num_classes), num_classes)
    return confusion
