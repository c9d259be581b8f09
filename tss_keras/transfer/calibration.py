"""Self-calibration: choose diffusion settings on the user's own strong-class masks.

A user's data has masks only for strong classes, so those are what label
transfer can be checked against. The lnet stage holds a few strong images
out of L-Net training (``holdout_ids``); here label transfer runs on them as
if they were weak (image labels only), over a small grid of settings, and
the setting whose pseudo-labels score best against their masks is used for
the weak pool. The score is the mean IoU over the foreground classes with a
void pseudo-label counted as background (abstaining is not free); settings
that leave more than 15 % of the labelled pixels void are not eligible.

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
    """{settings: PseudoLabelScore} of label transfer on masked ``records`` (labels from masks).

    Scores are computed at the L-Net's canonical size; each diffusion runs
    once for all the confidence thresholds that share it.
    """
    items = []
    for record in records:
        image = read_image(record.image_path)
        view = transfer.view([image])
        size = tuple(int(d) for d in view.images.shape[1:3])
        mask = tf.image.resize(read_mask(record.mask_path, num_classes)[..., None], size,
                               method="nearest").numpy()[..., 0]
        items.append((view, multi_hot(record.labels, num_classes)[None], size, mask))
    scores = {params: PseudoLabelScore(num_classes) for params in settings}
    by_diffusion = {}
    for params in settings:
        by_diffusion.setdefault(dataclasses.replace(params, confidence=0.0), []).append(params)
    for diffusion, group in by_diffusion.items():
        for view, labels, size, mask in items:
            grid_scores = tf.image.resize(transfer.scores(view, labels, diffusion), size)
            for params in group:
                label = transfer.labels_from_scores(grid_scores, labels, params.confidence)[0]
                scores[params].add(label, mask)
    return scores


def calibrate(transfer, records, num_classes, base, grid=None):
    """Picks the best ``grid`` setting (default GRID) on held-out masked ``records``.

    Returns:
        (DiffusionParams, report dict with the chosen settings, its score and
        coverage, and every candidate's numbers).
    """
    grid = grid or GRID
    classes = sorted({c for r in records for c in r.labels})
    scores = score_settings(transfer, records, num_classes, candidates(base, grid))
    table = [{**_key(p, grid), **s.summary(classes)} for p, s in scores.items()]
    eligible = [row for row in table if row["coverage"] is not None
                and row["coverage"] >= MIN_COVERAGE and row["miou_void_as_background"] is not None]
    pool = eligible or table
    best = max(pool, key=lambda row: (row["miou_void_as_background"] or 0.0, row["coverage"]))
    chosen = dataclasses.replace(base, **{k: best[k] for k in grid})
    report = {"images": len(records), "classes": len(classes), "chosen": _key(chosen, grid),
              "miou_void_as_background": best["miou_void_as_background"],
              "coverage": best["coverage"], "eligible": len(eligible),
              "candidates": table}
    return chosen, report
