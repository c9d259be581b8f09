"""Counts of a split: images, class images and pixels, void, pool sizes."""

import concurrent.futures

import numpy as np

from tss_keras.constants import VOID_LABEL

from tss_keras.data.pools import build_pools, parse_strong_classes
from tss_keras.data.voc import load_split, read_mask


def inspect_split(data_dir, split, class_names, strong_classes="all", skip_bad=False):
    """Returns the dict that ``trainers.inspect_data`` prints.

    Keys: ``num_images``, ``class_image_counts`` and ``class_pixel_counts``
    (class name -> count, background included; pixels only from masks),
    ``void_pixels``, ``strong_pool``, ``weak_pool``, ``images_without_mask``,
    and with ``skip_bad`` also ``bad_files``. Every image is fully decoded.
    """
    class_split = parse_strong_classes(strong_classes, class_names)
    records, bad = load_split(data_dir, split, class_names, skip_bad=skip_bad,
                              verify_images=True)
    num_classes = len(class_names)
    image_counts = np.zeros(num_classes, np.int64)
    pixel_counts = np.zeros(256, np.int64)

    def count(record):
        return np.bincount(read_mask(record.mask_path, num_classes).reshape(-1), minlength=256)

    masked = [r for r in records if r.mask_path is not None]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for counts in pool.map(count, masked):
            pixel_counts += counts
            image_counts[:num_classes] += counts[:num_classes] > 0
    for record in records:
        if record.mask_path is None:
            image_counts[list(record.labels)] += 1
    pools = build_pools(records, class_split)
    result = {
        "num_images": len(records),
        "class_image_counts": {n: int(image_counts[i]) for i, n in enumerate(class_names)},
        "class_pixel_counts": {n: int(pixel_counts[i]) for i, n in enumerate(class_names)},
        "void_pixels": int(pixel_counts[VOID_LABEL]),
        "strong_pool": len(pools.strong),
        "weak_pool": len(pools.weak),
        "images_without_mask": len(records) - len(masked),
    }
    if skip_bad:
        result["bad_files"] = bad
    return result
