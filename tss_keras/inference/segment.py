"""Writes a palette mask and a side-by-side overlay for each input image."""

import os

import numpy as np
from PIL import Image

from tss_keras.errors import DataError
from tss_keras.data.palette import colorize, save_palette_png
from tss_keras.files import atomic_write
from tss_keras.progress import Progress
from tss_keras.data.voc import IMAGE_EXTENSIONS


def list_images(path):
    """The image files at ``path`` (one file, or a folder's images in name order)."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise DataError(f"{path}: --input folder has no .jpg/.jpeg/.png image")
        return files
    if not os.path.isfile(path):
        raise DataError(f"{path}: --input does not exist")
    return [path]


def segment(predictor, input_path, output_dir, alpha=0.5, skip_bad=False):
    """Runs ``predictor`` over the images and writes ``<name>.png`` and ``<name>_overlay.jpg``.

    Args:
        predictor: a Predictor.
        input_path: an image file or a folder of images.
        output_dir: where masks and overlays go.
        alpha: overlay opacity.
        skip_bad: skip images that cannot be read (listed in the result)
            instead of stopping at the first.

    Returns:
        (mask paths written, [{"file", "error"} of skipped images]).
    """
    files = list_images(input_path)
    os.makedirs(output_dir, exist_ok=True)
    progress = Progress(len(files), "segment", "image", enabled=len(files) > 1)
    written, skipped = [], []
    for i, path in enumerate(files):
        try:
            image, classes = predictor.classes(path)
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append({"file": path, "error": str(e).partition(": ")[2]})
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        mask_path = os.path.join(output_dir, stem + ".png")
        save_palette_png(mask_path, classes)
        blend = (image * (1 - alpha) + colorize(classes) * alpha).astype(np.uint8)
        side_by_side = Image.fromarray(np.concatenate([image, blend], axis=1))
        atomic_write(os.path.join(output_dir, stem + "_overlay.jpg"),
                     lambda tmp, im=side_by_side: im.save(tmp, "JPEG", quality=90))
        written.append(mask_path)
        progress.update(i + 1)
    return written, skipped
