"""The embedded data set: a seeded, VOC-layout set of textured shapes.

Writes ``JPEGImages/*.jpg``, palette ``SegmentationClass/*.png`` (255 void
bands on object borders, as VOC), ``ImageSets/Segmentation/{train,val}.txt``
and ``class_names.txt``. Categories differ in shape, colour and texture.
``category_set="agnostic"`` writes a disjoint group of extra categories, the
class-agnostic mask source for the 0 % setting (``--agnostic_data_dir``).

Run ``python -m tss_keras.data.synthetic --out_dir=D [--category_set=...]``.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image

from tss_keras.constants import VOID_LABEL
from tss_keras.data.palette import save_palette_png
from tss_keras.files import atomic_write, write_json, write_text

# name, shape, base hue (RGB), texture
MAIN_CATEGORIES = (
    ("disc", "disc", (220, 40, 40), "dots"),
    ("square", "square", (40, 70, 220), "stripes"),
    ("triangle", "triangle", (230, 200, 30), "checker"),
    ("ring", "ring", (160, 50, 200), "noise"),
    ("cross", "cross", (30, 200, 200), "stripes"),
    ("diamond", "diamond", (240, 130, 20), "dots"),
)
AGNOSTIC_CATEGORIES = (
    ("star", "star", (250, 60, 150), "checker"),
    ("hexagon", "hexagon", (60, 220, 80), "noise"),
    ("crescent", "crescent", (250, 250, 250), "stripes"),
    ("bar", "bar", (120, 30, 30), "dots"),
)
CATEGORY_SETS = {"main": MAIN_CATEGORIES, "agnostic": AGNOSTIC_CATEGORIES}
VOID_BORDER = 2


def shape_mask(shape, u, v):
    """Boolean mask of a unit-size shape at normalised, rotated coordinates (u, v)."""
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    if shape == "disc":
        return r <= 1.0
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if shape == "diamond":
        return abs(u) + abs(v) <= 1.0
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "cross":
        return ((abs(u) <= 0.3) & (abs(v) <= 1.0)) | ((abs(v) <= 0.3) & (abs(u) <= 1.0))
    if shape == "triangle":
        return (v <= 0.5) & (v >= -1.0 + 1.732 * abs(u))
    if shape == "star":
        return r <= 0.55 + 0.45 * np.cos(5 * theta) ** 2
    if shape == "hexagon":
        sector = np.pi / 3
        return r * np.cos((theta % sector) - sector / 2) <= 0.87
    if shape == "crescent":
        return (r <= 1.0) & (np.sqrt((u - 0.45) ** 2 + v * v) > 0.8)
    if shape == "bar":
        return (abs(u) <= 1.0) & (abs(v) <= 0.35)
    raise ValueError(f"unknown shape {shape!r}")


SHAPES = ("disc", "square", "diamond", "ring", "cross", "triangle", "star", "hexagon",
          "crescent", "bar")


def rotated_coordinates(yy, xx, cy, cx, radius, angle):
    """Coordinates (u, v) of pixel grids ``yy, xx`` in a shape's frame (radius 1)."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    return (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius


def _shape_mask(shape, height, width, cy, cx, radius, angle):
    """Boolean [H, W] mask of one shape centred at (cy, cx)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return shape_mask(shape, *rotated_coordinates(yy, xx, cy, cx, radius, angle))


def _texture(kind, height, width, rng):
    """A [H, W] float pattern in [0, 1]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(5, 9)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * t / period + phase))
    if kind == "checker":
        return ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
    if kind == "dots":
        return (np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period) > 0.4
                ).astype(np.float32)
    return rng.uniform(0, 1, size=(height, width)).astype(np.float32)


def _background(height, width, rng):
    """Muted, low-frequency textured background [H, W, 3] float in 0..255."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(70, 150, size=3)
    tint = rng.uniform(-25, 25, size=3)
    field = np.zeros((height, width), np.float32)
    for _ in range(3):
        fy, fx = rng.uniform(0.01, 0.06, size=2)
        field += np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
    image = base + field[..., None] / 3.0 * tint * 2.0
    return image + rng.normal(0, 6, size=(height, width, 3))


def border(mask, width=VOID_BORDER):
    """Pixels within ``width`` of the mask boundary (VOC-style void band).

    The image edge is not a boundary: an object cut by the edge gets no void
    there (and none wraps around to the opposite edge).
    """
    grown = np.pad(mask, width, mode="edge")
    shrunk = grown.copy()
    for _ in range(width):
        g, s = grown.copy(), shrunk.copy()
        for axis in (0, 1):
            for shift in (1, -1):
                g |= np.roll(grown, shift, axis=axis)
                s &= np.roll(shrunk, shift, axis=axis)
        grown, shrunk = g, s
    inner = (slice(width, -width), slice(width, -width))
    return grown[inner] & ~shrunk[inner]


def render_image(rng, categories, max_objects=3):
    """Returns (image uint8 [H, W, 3], mask uint8 [H, W]) for one example."""
    height, width = int(rng.integers(112, 176)), int(rng.integers(136, 216))
    image = _background(height, width, rng)
    mask = np.zeros((height, width), np.uint8)
    void = np.zeros((height, width), bool)
    # Mostly one or two objects, so that images with strong classes only are common.
    weights = np.array([0.5, 0.35, 0.15][:max_objects])
    num_objects = int(rng.choice(np.arange(1, max_objects + 1), p=weights / weights.sum()))
    for _ in range(num_objects):
        class_id = int(rng.integers(1, len(categories) + 1))
        _, shape, hue, texture = categories[class_id - 1]
        radius = rng.uniform(0.16, 0.30) * min(height, width)
        cy = rng.uniform(radius, height - radius)
        cx = rng.uniform(radius, width - radius)
        obj = _shape_mask(shape, height, width, cy, cx, radius, rng.uniform(0, 2 * np.pi))
        if obj.sum() < 30:
            continue
        colour = np.clip(np.asarray(hue, np.float32) + rng.normal(0, 18, size=3), 0, 255)
        pattern = _texture(texture, height, width, rng)[..., None]
        fill = colour * (0.55 + 0.45 * pattern)
        image[obj] = fill[obj]
        mask[obj] = class_id
        void = (void & ~obj) | border(obj)
    mask[void] = VOID_LABEL
    image = np.clip(image + rng.normal(0, 4, size=image.shape), 0, 255).astype(np.uint8)
    return image, mask


def write_voc_set(out_dir, prefix, split_sizes, render, class_names, meta):
    """Writes a VOC-layout set: images, palette masks, split lists, class names, meta JSON.

    Args:
        out_dir: target directory (created).
        prefix: image-id prefix.
        split_sizes: {split name: image count}, written in this order.
        render: a function of no arguments returning (image uint8 [H, W, 3],
            mask uint8 [H, W]); called once per image, in order.
        class_names: written to ``class_names.txt``.
        meta: written to ``synthetic.json`` (last, so its presence marks a
            finished set), with ``num_images`` and ``class_names`` added.

    Returns:
        ``{"out_dir": out_dir, **meta}``.
    """
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    index = 0
    for split, count in split_sizes.items():
        ids = []
        for _ in range(count):
            image_id = f"{prefix}_{index:05d}"
            index += 1
            image, mask = render()
            jpg = os.path.join(out_dir, "JPEGImages", image_id + ".jpg")
            atomic_write(jpg, lambda tmp, im=image: Image.fromarray(im).save(tmp, "JPEG", quality=92))
            save_palette_png(os.path.join(out_dir, "SegmentationClass", image_id + ".png"), mask)
            ids.append(image_id)
        write_text(os.path.join(out_dir, "ImageSets", "Segmentation", f"{split}.txt"),
                   "\n".join(ids) + "\n")
    write_text(os.path.join(out_dir, "class_names.txt"), "\n".join(class_names) + "\n")
    summary = {**meta, "num_images": index, "class_names": list(class_names)}
    write_json(os.path.join(out_dir, "synthetic.json"), summary)
    return {"out_dir": out_dir, **summary}


def generate(out_dir, num_train=240, num_val=60, seed=0, category_set="main", extra_meta=None):
    """Writes the embedded VOC-layout set into ``out_dir`` and returns a summary.

    Args:
        out_dir: target directory (created).
        num_train, num_val: images in the ``train`` and ``val`` splits.
        seed: the same seed writes byte-identical files.
        category_set: ``"main"`` (the classes to segment) or ``"agnostic"``
            (disjoint extra categories for the 0 % setting).
        extra_meta: more entries for ``synthetic.json``.

    Example:
        >>> generate("/tmp/synth", num_train=20, num_val=5)["num_images"]
        25
    """
    categories = CATEGORY_SETS[category_set]
    rng = np.random.default_rng(seed)
    prefix = ("a" if category_set == "agnostic" else "s") + f"{seed:03d}"
    names = class_names(category_set)
    return write_voc_set(out_dir, prefix, {"train": num_train, "val": num_val},
                         lambda: render_image(rng, categories), names,
                         {"category_set": category_set, "seed": seed, **(extra_meta or {})})


def class_names(category_set="main"):
    """The class list (background first) of an embedded set, as its class_names.txt has it."""
    return ["background"] + [c[0] for c in CATEGORY_SETS[category_set]]


def ensure(out_dir, category_set="main", seed=0, num_train=240, num_val=60):
    """Generates the set into ``out_dir`` unless a finished one is there."""
    if os.path.isfile(os.path.join(out_dir, "synthetic.json")):
        return False
    generate(out_dir, num_train=num_train, num_val=num_val, seed=seed, category_set=category_set)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--category_set", choices=sorted(CATEGORY_SETS), default="main")
    parser.add_argument("--num_train", type=int, default=240)
    parser.add_argument("--num_val", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.out_dir, args.num_train, args.num_val, args.seed,
                              args.category_set)))


if __name__ == "__main__":
    main()
