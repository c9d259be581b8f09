"""Self-calibration: choose diffusion settings on the user's own strong-class masks.

A user's data has masks only for strong classes, so those are what label
transfer can be checked against. The lnet stage holds a few strong images
out of L-Net training (``holdout_ids``); here label transfer runs on them as
if they were weak (image labels only), over a small grid of settings, and
a setting replaces the configured one (the ``--diffusion_*`` values) only
when its pseudo-labels score clearly better against their masks. The score
is the mean IoU over the foreground classes with a void pseudo-label counted
as background (abstaining is not free); settings that leave more than 15 %
of the labelled pixels void are not eligible. "Clearly" is a paired
bootstrap over the held-out images: the setting must score higher than the
configured one on at least ``MIN_WIN_SHARE`` of the resampled sets, so that
a lead carried by one or two of a dozen images does not count.

The held-out images show strong classes, which the agnostic head has seen
(in other images), so the score is optimistic about the agnostic map; it is
used to rank settings, not as a promise for weak classes.
"""

import dataclasses
import itertools

import numpy as np
import tensorflow as tf

from tss_keras.data.pipeline import multi_hot
from tss_keras.data.voc import read_image, read_mask
from tss_keras.evaluation.confusion import iou_per_class
from tss_keras.transfer.evaluate import PseudoLabelScore

# The settings calibration chooses among (the others keep their configured value),
# around the defaults that leave-one-domain-out tuning chose.
GRID = {
    "iterations": (0, 10, 30),
    "cam_weight": (0.25, 0.5, 1.0),
    "prototype_weight": (0.5, 1.0),
    "confidence": (0.2, 0.3, 0.5),
}
MIN_COVERAGE = 0.85
BOOTSTRAP_RESAMPLES = 200
MIN_WIN_SHARE = 0.9
HOLDOUT_FRACTION = 0.15
MIN_HOLDOUT = 4


def holdout_ids(strong_examples, max_images, seed):
    """Ids of the strong images held out of L-Net training for calibration.

    At most ``max_images`` and at most 15 % of the strong pool; none when
    that is fewer than 4 images (calibration is then skipped).
    """
    count = min(max_images, int(HOLDOUT_FRACTION * len(strong_examples)))
    if count < MIN_HOLDOUT:
        return []
    ids = sorted(e.image_id for e in strong_examples)
    chosen = np.random.default_rng(seed).choice(len(ids), count, replace=False)
    return sorted(ids[i] for i in chosen)


def candidates(base, grid=None):
    """Every DiffusionParams of the grid: ``base`` with each combination of its values."""
    grid = grid or GRID
    names = sorted(grid)
    return [dataclasses.replace(base, **dict(zip(names, values)))
            for values in itertools.product(*(grid[name] for name in names))]


def _key(params, grid=None):
    return {k: getattr(params, k) for k in (grid or GRID)}


def score_settings(transfer, records, num_classes, settings):
    """{settings: [PseudoLabelScore per record]} of label transfer on masked ``records``.

    Labels come from the masks. Scores are computed at the L-Net's canonical
    size; each diffusion runs once for all the confidence thresholds that
    share it.
    """
    items = []
    for record in records:
        image = read_image(record.image_path)
        view = transfer.view([image])
        size = tuple(int(d) for d in view.images.shape[1:3])
        mask = tf.image.resize(read_mask(record.mask_path, num_classes)[..., None], size,
                               method="nearest").numpy()[..., 0]
        items.append((view, multi_hot(record.labels, num_classes)[None], size, mask))
    scores = {params: [] for params in settings}
    by_diffusion = {}
    for params in settings:
        by_diffusion.setdefault(dataclasses.replace(params, confidence=0.0), []).append(params)
    for diffusion, group in by_diffusion.items():
        for view, labels, size, mask in items:
            grid_scores = tf.image.resize(transfer.scores(view, labels, diffusion), size)
            for params in group:
                label = transfer.labels_from_scores(grid_scores, labels, params.confidence)[0]
                score = PseudoLabelScore(num_classes)
                score.add(label, mask)
                scores[params].append(score)
    return scores


def total_score(per_image, num_classes):
    """One PseudoLabelScore summing per-image ones."""
    total = PseudoLabelScore(num_classes)
    for score in per_image:
        total.merge(score)
    return total


def resampled_miou(strict, resamples, classes):
    """[R] void-as-background mIoU of each resampled image set.

    Args:
        strict: [N, K, K] per-image confusion matrices (void counted as background).
        resamples: [R, N] how many times each image is drawn in each resample.
        classes: class ids the mean runs over (a class with no pixels is skipped).
    """
    iou = iou_per_class(np.tensordot(resamples, strict, axes=1))[:, sorted(classes)]  # [R, K']
    return np.nanmean(np.where(np.isnan(iou).all(axis=1, keepdims=True), 0.0, iou), axis=1)


def win_shares(strict, configured, classes, seed=0):
    """[S] share of bootstrap resamples of the images on which each setting beats ``configured``.

    Args:
        strict: [S, N, K, K] per-setting, per-image confusion matrices.
        configured: index of the configured setting.
        classes: class ids the mIoU runs over.
    """
    images = strict.shape[1]
    draws = np.random.default_rng(seed).integers(0, images, (BOOTSTRAP_RESAMPLES, images))
    resamples = np.stack([np.bincount(row, minlength=images) for row in draws])
    scores = np.stack([resampled_miou(m, resamples, classes) for m in strict])  # [S, R]
    return (scores > scores[configured][None]).mean(axis=1)


def calibrate(transfer, records, num_classes, base, grid=None):
    """Picks the diffusion setting for the weak pool on held-out masked ``records``.

    The candidates are ``base`` (the configured values) and the ``grid``
    settings (default GRID). A candidate replaces ``base`` only if it labels
    at least MIN_COVERAGE of the pixels, scores higher than ``base`` and wins
    at least MIN_WIN_SHARE of the paired bootstrap resamples of the images;
    of those, the best is chosen.

    Returns:
        (DiffusionParams, report dict with the chosen settings, its score and
        coverage, the configured setting's score, and every candidate's
        numbers with its win share).
    """
    grid = grid or GRID
    classes = sorted({c for r in records for c in r.labels})
    settings = list(dict.fromkeys([base] + candidates(base, grid)))
    per_image = score_settings(transfer, records, num_classes, settings)
    summaries = [total_score(per_image[p], num_classes).summary(classes) for p in settings]
    strict = np.stack([np.stack([s.strict for s in per_image[p]]) for p in settings])
    shares = win_shares(strict, 0, classes)
    table = [{**_key(p, grid), **summary, "win_share": float(share) if i else None}
             for i, (p, summary, share) in enumerate(zip(settings, summaries, shares))]
    eligible = [i for i, row in enumerate(table) if row["coverage"] is not None
                and row["coverage"] >= MIN_COVERAGE and row["miou_void_as_background"] is not None]
    configured_score = table[0]["miou_void_as_background"] or 0.0
    better = [i for i in eligible if i != 0 and shares[i] >= MIN_WIN_SHARE
              and table[i]["miou_void_as_background"] > configured_score]
    best = max(better, key=lambda i: (table[i]["miou_void_as_background"], table[i]["coverage"]),
               default=0)
    chosen = settings[best]
    report = {"images": len(records), "classes": len(classes), "chosen": _key(chosen, grid),
              "miou_void_as_background": table[best]["miou_void_as_background"],
              "coverage": table[best]["coverage"], "win_share": table[best]["win_share"],
              "configured": {**_key(base, grid),
                             "miou_void_as_background": table[0]["miou_void_as_background"],
                             "coverage": table[0]["coverage"]},
              "eligible": len(eligible), "candidates": table}
    return chosen, report
