"""Runs label transfer over the weak pool and writes pseudo-label PNGs and their summary."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tss_keras.constants import VOID_LABEL
from tss_keras.data.palette import colorize, save_palette_png
from tss_keras.data.pipeline import multi_hot
from tss_keras.data.voc import image_size, read_image
from tss_keras.errors import UsageError
from tss_keras.files import write_json
from tss_keras.layout import label_png
from tss_keras.progress import Progress
from tss_keras.transfer.label_transfer import canonical_size


def generate_pseudo_labels(transfer, examples, layout, num_classes, shard_index=0, num_shards=1,
                           verbose=1, log_images=4, batch_size=8, out_dir=None, log_dir=None):
    """Writes this shard's weak pseudo-labels, ``<id>.png`` in ``<model_dir>/pseudo_labels/``.

    Images that share a canonical size go through the L-Net in batches of
    ``batch_size``. Files are palette PNGs at the image's own size with 255
    void, written atomically; finished files are skipped, so a re-run after a
    crash continues. The first ``log_images`` written go to TensorBoard
    (``logs/transfer``) as image | pseudo-label pairs.

    Args:
        transfer: a ``LabelTransfer``.
        examples: the weak pool (WeakExample: image path and labels, no mask).
        layout: the run's RunLayout.
        num_classes: K + 1.
        shard_index, num_shards: this worker's share (every num_shards-th example).
        out_dir: where the PNGs go instead (default ``layout.pseudo_label_dir``).
        log_dir: their TensorBoard folder instead (default ``layout.logs("transfer")``).

    Returns:
        (written, skipped) counts of this shard.
    """
    if not examples:
        raise UsageError("--strong_classes: the weak pool is empty; nothing to transfer")
    out_dir = out_dir or layout.pseudo_label_dir
    os.makedirs(out_dir, exist_ok=True)

    def path(example):
        return label_png(out_dir, example.image_id)

    mine = list(examples)[shard_index::num_shards]
    todo = [e for e in mine if not os.path.isfile(path(e))]
    groups = {}
    for example in todo:
        height, width = image_size(example.image_path)
        groups.setdefault(canonical_size(height, width, transfer.image_size), []).append(example)
    progress = Progress(len(mine), "transfer", "image", enabled=bool(verbose))
    writer = tf.summary.create_file_writer(log_dir or layout.logs("transfer"))
    done = len(mine) - len(todo)
    if verbose and todo:
        print(f"transfer: {len(todo)} images at {len(groups)} canonical size(s); the first "
              f"batch traces the L-Net and diffusion and takes longest", flush=True)
    for size in sorted(groups):
        group = groups[size]
        for start in range(0, len(group), batch_size):
            batch = group[start:start + batch_size]
            images = [read_image(e.image_path) for e in batch]
            labels = np.stack([multi_hot(e.labels, num_classes) for e in batch])
            results = transfer.labels(transfer.view(images), labels,
                                      [i.shape[:2] for i in images])
            for example, image, label in zip(batch, images, results):
                save_palette_png(path(example), label)
                written = done - (len(mine) - len(todo))
                if written < log_images:
                    with writer.as_default():
                        pair = np.concatenate([image, colorize(label)], axis=1)
                        tf.summary.image(f"transfer/{example.image_id}", pair[None], step=0)
                done += 1
                progress.update(done)
    writer.close()
    return len(todo), len(mine) - len(todo)


def summarize_pseudo_labels(examples, layout, class_names, settings, written=None, skipped=None):
    """Writes ``pseudo_labels.json`` from every pseudo-label file of the weak pool.

    Counts come from the files on disk, so a resumed run describes all of
    them, not only those written last.
    """
    counts = np.zeros(256, np.int64)
    for example in examples:
        with Image.open(layout.pseudo_label(example.image_id)) as png:
            counts += np.bincount(np.asarray(png).reshape(-1), minlength=256)
    labelled = counts.sum()
    summary = {
        "num_images": len(examples),
        "written": written, "skipped_existing": skipped,
        "void_fraction": float(counts[VOID_LABEL] / labelled) if labelled else None,
        "class_pixel_fraction": {n: float(counts[i] / labelled) if labelled else None
                                 for i, n in enumerate(class_names)},
        **settings,
    }
    write_json(layout.pseudo_label_summary, summary)
    return summary
