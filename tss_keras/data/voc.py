"""Reads PASCAL VOC-layout data sets exactly: images, masks, split and label lists.

Layout (``data_dir`` is e.g. ``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png      palette PNG, indices are class ids, 255 void
    SegmentationClassAug/<id>.png   SBD-style grayscale, same values (used when
                                    SegmentationClass has no file for the id)
    ImageSets/Segmentation/<split>.txt          one id per line
    ImageSets/Segmentation/<split>_labels.txt   optional: ``<id> <class> ...``
                                    image-level labels of images with no mask
"""

import concurrent.futures
import dataclasses
import os
from typing import FrozenSet, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from tss_keras.constants import VOID_LABEL
from tss_keras.data.class_names import resolve_class
from tss_keras.errors import DataError
from tss_keras.data.palette import colours_to_ids

MASK_DIRS = ("SegmentationClass", "SegmentationClassAug")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class VocRecord:
    """One image of a split as read from disk.

    Attributes:
        image_id: the id from the split list.
        image_path: path of the JPEG (or PNG) image.
        mask_path: path of its mask, or None for an image with labels only.
        labels: foreground class ids present in the image (background and
            void excluded).
        height, width: image size in pixels.
    """

    image_id: str
    image_path: str
    mask_path: Optional[str]
    labels: FrozenSet[int]
    height: int
    width: int


def split_list_path(data_dir, split):
    return os.path.join(data_dir, "ImageSets", "Segmentation", f"{split}.txt")


def label_list_path(data_dir, split):
    return os.path.join(data_dir, "ImageSets", "Segmentation", f"{split}_labels.txt")


def resolve_split(data_dir, split):
    """Picks the first existing split of a comma-separated list (``train_aug,train``).

    This lets one flag file use SBD's ``train_aug`` list when it is there and
    VOC's ``train`` otherwise. A single name is returned as it is.
    """
    candidates = [s.strip() for s in split.split(",") if s.strip()]
    for candidate in candidates:
        if os.path.isfile(split_list_path(data_dir, candidate)):
            return candidate
    return candidates[-1] if candidates else split


def read_split_ids(data_dir, split):
    """Returns the image ids listed in ``ImageSets/Segmentation/<split>.txt``."""
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data directory does not exist")
    path = split_list_path(data_dir, split)
    if not os.path.isfile(path):
        raise DataError(f"{path}: split list not found (split {split!r})")
    with open(path, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise DataError(f"{path}: split {split!r} is empty")
    return ids


def read_label_list(path, class_names):
    """Reads ``<id> <class> <class> ...`` lines (names or ids) into {id: frozenset}.

    Background (id 0) may be listed; it is dropped from the label set.
    """
    labels = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            ids = {resolve_class(t, class_names, f"{path}:{line_number}") for t in tokens[1:]}
            labels[tokens[0]] = frozenset(ids - {0})
    return labels


def find_image(data_dir, image_id):
    """Returns the image path for an id, or None."""
    for ext in IMAGE_EXTENSIONS:
        path = os.path.join(data_dir, "JPEGImages", image_id + ext)
        if os.path.isfile(path):
            return path
    return None


def find_mask(data_dir, image_id):
    """Returns the mask path for an id (SegmentationClass first), or None."""
    for directory in MASK_DIRS:
        path = os.path.join(data_dir, directory, image_id + ".png")
        if os.path.isfile(path):
            return path
    return None


def read_image(path):
    """Decodes an image file fully into uint8 RGB [H, W, 3]."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def image_size(path):
    """Returns (height, width) from the file header, without decoding."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            return height, width
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DataError(f"{path}: not a readable image") from None


def read_mask(path, num_classes):
    """Decodes a mask into uint8 class ids [H, W] and checks its values.

    Palette PNGs give their indices, grayscale PNGs their values, RGB PNGs are
    mapped through the VOC palette (unknown colours raise). Values must be in
    ``0..num_classes-1`` or 255.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("RGB", "RGBA"):
                mask = colours_to_ids(np.asarray(image.convert("RGB")), path)
            elif mode in ("P", "L"):
                mask = np.asarray(image)
            elif mode in ("I", "I;16", "I;16B", "I;16L"):
                values = np.asarray(image).astype(np.int64)
                if values.min() < 0 or values.max() > 255:
                    raise DataError(f"{path}: mask values outside 0..255")
                mask = values.astype(np.uint8)
            else:
                raise DataError(f"{path}: unsupported mask image mode {mode!r}")
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable mask image") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: unreadable or truncated mask ({e})") from None
    counts = np.bincount(mask.reshape(-1), minlength=256)
    counts[VOID_LABEL] = 0
    bad = np.nonzero(counts[num_classes:])[0] + num_classes
    if bad.size:
        raise DataError(
            f"{path}: mask values {bad.tolist()} outside 0..{num_classes - 1} and {VOID_LABEL}")
    return mask


def mask_labels(mask):
    """Foreground class ids present in a mask."""
    present = np.nonzero(np.bincount(mask.reshape(-1), minlength=256))[0]
    return frozenset(int(c) for c in present if c not in (0, VOID_LABEL))


def _read_record(data_dir, image_id, class_names, listed_labels, verify_images):
    image_path = find_image(data_dir, image_id)
    if image_path is None:
        raise DataError(
            f"{os.path.join(data_dir, 'JPEGImages', image_id + '.jpg')}: "
            f"no image for id {image_id!r} listed in the split")
    if verify_images:
        height, width = read_image(image_path).shape[:2]
    else:
        height, width = image_size(image_path)
    mask_path = find_mask(data_dir, image_id)
    if mask_path is None:
        if image_id not in listed_labels:
            raise DataError(
                f"{os.path.join(data_dir, MASK_DIRS[0], image_id + '.png')}: missing mask "
                f"(and {image_id!r} is not in the split's _labels.txt)")
        return VocRecord(image_id, image_path, None, listed_labels[image_id], height, width)
    mask = read_mask(mask_path, len(class_names))
    if mask.shape != (height, width):
        raise DataError(
            f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from "
            f"image size {width}x{height} ({image_path})")
    return VocRecord(image_id, image_path, mask_path, mask_labels(mask), height, width)


def load_split(data_dir, split, class_names, skip_bad=False, verify_images=False,
               num_threads=8):
    """Reads a split into VocRecords, checking every file it touches.

    Args:
        data_dir: the VOC-layout root.
        split: the split name (``ImageSets/Segmentation/<split>.txt``), or
            comma-separated names of which the first existing is used.
        class_names: the class-name list.
        skip_bad: if True, bad files are skipped and returned; otherwise the
            first one raises DataError.
        verify_images: decode every image fully (catches truncated files);
            otherwise only headers are read. Masks are always decoded.
        num_threads: parallel readers.

    Returns:
        (records, bad_files): records in list order, and a list of
        ``{"file": ..., "error": ...}`` for skipped files.
    """
    split = resolve_split(data_dir, split)
    ids = read_split_ids(data_dir, split)
    labels_path = label_list_path(data_dir, split)
    listed = read_label_list(labels_path, class_names) if os.path.isfile(labels_path) else {}
    unknown = sorted(set(listed) - set(ids))
    if unknown:
        raise DataError(f"{labels_path}: ids not in split {split!r}: {unknown[:5]}")

    def read(image_id):
        try:
            return _read_record(data_dir, image_id, class_names, listed, verify_images)
        except DataError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        results = list(pool.map(read, ids))
    records, bad = [], []
    for result in results:
        if isinstance(result, DataError):
            if not skip_bad:
                raise result
            message = str(result)
            file_name, _, problem = message.partition(": ")
            bad.append({"file": file_name, "error": problem})
        else:
            records.append(result)
    if not records:
        raise DataError(f"{split_list_path(data_dir, split)}: no usable image in split {split!r}")
    return records, bad
