"""A suite of VOC-layout data domains for measuring label transfer beyond one set.

Each domain is a seeded generator that writes the VOC layout (JPEG images,
palette masks with a 255 void band on object borders, split lists,
``class_names.txt``) plus ``synthetic.json`` naming its strong classes. The
domains differ in what matters for transfer:

========= ============================================================================
domain    what it varies
========= ============================================================================
shapes    today's embedded set: synthetic textures on smooth backgrounds, ~150 px
photo     real photographic textures on real photographic backgrounds, 200-360 px
small     VOC-sized images (400-500 px) with 2-6 small, overlapping objects
shared    96-160 px images; every weak class has a strong class's texture, so
          only its shape tells it apart
wide      panoramas and portraits (aspect 2:1 to 1:2) with large, occluding objects
========= ============================================================================

Real photographs come from the sample images that scikit-image ships in its
wheel (nothing is downloaded). Objects are shapes (including a horse
silhouette and random blobs), deformed by a smooth random warp and filled
with a photo texture; backgrounds are crops of other photos.

Run ``python -m tss_keras.data.domains --domain=all --out_dir=D`` to write
every domain to ``D/<domain>``.
"""

import argparse
import dataclasses
import functools
import json
import os
from typing import Tuple

import numpy as np
from PIL import Image

from tss_keras.constants import VOID_LABEL
from tss_keras.data import synthetic
from tss_keras.errors import UsageError


@dataclasses.dataclass(frozen=True)
class ObjectClass:
    """How one class looks: a shape and a texture (see TEXTURES)."""

    name: str
    shape: str
    texture: str


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """What a domain's images look like.

    Attributes:
        classes: the foreground classes, strong ones first.
        num_strong: how many of ``classes`` are strong.
        long_side: range of the image's longer side in pixels.
        aspect: ranges of width / height to draw from (one picked at random).
        object_radius: object radius as a fraction of the image's shorter side.
        objects: range of objects per image (inclusive).
        deform: smooth warp amplitude as a fraction of the radius.
        same_group: probability that all objects of an image come from one
            group (strong or weak classes), as related objects co-occur in
            real scenes; otherwise each object's class is drawn alone.
    """

    classes: Tuple[ObjectClass, ...]
    num_strong: int
    long_side: Tuple[int, int]
    aspect: Tuple[Tuple[float, float], ...]
    object_radius: Tuple[float, float]
    objects: Tuple[int, int]
    deform: float = 0.15
    same_group: float = 0.3


@dataclasses.dataclass(frozen=True)
class Texture:
    """A class's surface: a region of a scikit-image sample photograph.

    Attributes:
        source: the sample file.
        region: (left, right, top, bottom) fractions of the photograph where
            the texture looks the same throughout (the cat's fur, not its eye).
        tint: RGB colour a grey source is mapped onto (None: a colour source).
        lift: RGB offset added (brings a near-black texture off black).
    """

    source: str
    region: Tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    tint: Tuple[int, int, int] = None
    lift: Tuple[int, int, int] = (0, 0, 0)


TEXTURES = {
    "brick": Texture("brick.png", tint=(190, 85, 60)),
    "grass": Texture("grass.png", tint=(80, 170, 60)),
    "gravel": Texture("gravel.png", tint=(165, 150, 120)),
    "fur": Texture("chelsea.png", region=(0.05, 0.70, 0.0, 0.32)),
    "cells": Texture("ihc.png"),
    "stars": Texture("hubble_deep_field.jpg", lift=(25, 30, 70)),
    "vessels": Texture("retina.jpg", region=(0.2, 0.8, 0.25, 0.75)),
    "wood": Texture("coffee.png", region=(0.78, 1.0, 0.05, 0.95)),
}
TEXTURE_ZOOM = (0.8, 1.25)
BACKGROUNDS = ("astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
               "camera.png", "moon.png", "coins.png", "cell.png", "clock_motion.png")
# Grey background photographs get at most this colour cast (fraction per channel): they
# stay grey, unlike the grey textures, which are mapped onto a class colour.
BACKGROUND_CAST = 0.08
_C = ObjectClass
DOMAINS = {
    "photo": DomainSpec(
        classes=(_C("disc", "disc", "fur"), _C("square", "square", "brick"),
                 _C("triangle", "triangle", "grass"), _C("star", "star", "cells"),
                 _C("ring", "ring", "stars"), _C("cross", "cross", "vessels"),
                 _C("hexagon", "hexagon", "wood"), _C("horse", "horse", "gravel")),
        num_strong=4, long_side=(200, 360), aspect=((0.75, 1.5),), object_radius=(0.15, 0.32),
        objects=(1, 3)),
    "small": DomainSpec(
        classes=(_C("disc", "disc", "wood"), _C("square", "square", "fur"),
                 _C("blob", "blob", "grass"), _C("triangle", "triangle", "brick"),
                 _C("diamond", "diamond", "cells"), _C("horse", "horse", "vessels")),
        num_strong=3, long_side=(400, 500), aspect=((0.66, 1.5),), object_radius=(0.05, 0.12),
        objects=(2, 6), same_group=0.6),
    "shared": DomainSpec(
        classes=(_C("disc", "disc", "brick"), _C("square", "square", "grass"),
                 _C("triangle", "triangle", "fur"), _C("ring", "ring", "cells"),
                 _C("cross", "cross", "brick"), _C("diamond", "diamond", "grass"),
                 _C("star", "star", "fur"), _C("hexagon", "hexagon", "cells")),
        num_strong=4, long_side=(96, 160), aspect=((0.75, 1.33),), object_radius=(0.18, 0.34),
        objects=(1, 3)),
    "wide": DomainSpec(
        classes=(_C("disc", "disc", "vessels"), _C("crescent", "crescent", "gravel"),
                 _C("bar", "bar", "wood"), _C("cross", "cross", "fur"),
                 _C("hexagon", "hexagon", "brick"), _C("blob", "blob", "stars")),
        num_strong=3, long_side=(320, 500), aspect=((0.45, 0.6), (1.7, 2.2)),
        object_radius=(0.25, 0.45), objects=(1, 2)),
}
SHAPES_DOMAIN = "shapes"  # today's embedded set (tss_keras.data.synthetic)
DOMAIN_NAMES = (SHAPES_DOMAIN,) + tuple(DOMAINS)
SHAPES_STRONG = ("disc", "square", "triangle")


@functools.lru_cache(maxsize=None)
def _sample_image(name):
    """A scikit-image sample photograph as float32 RGB [H, W, 3] (grey sources: [H, W])."""
    try:
        import skimage
    except ImportError:
        raise UsageError("the photo domains need scikit-image (pip install scikit-image), "
                         "whose wheel ships the sample photographs") from None
    path = os.path.join(os.path.dirname(skimage.__file__), "data", name)
    with Image.open(path) as image:
        if image.mode in ("L", "I", "I;16"):
            return np.asarray(image.convert("L"), np.float32)
        return np.asarray(image.convert("RGB"), np.float32)


@functools.lru_cache(maxsize=None)
def _horse():
    """The horse silhouette as a boolean array, cropped to its bounding box."""
    import skimage

    path = os.path.join(os.path.dirname(skimage.__file__), "data", "horse.png")
    with Image.open(path) as image:
        silhouette = np.asarray(image.convert("L")) < 128
    rows, cols = np.nonzero(silhouette)
    return silhouette[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _crop(rng, source, height, width, zoom):
    """A random crop of ``source`` resized to [height, width], randomly flipped."""
    src_h, src_w = source.shape[:2]
    scale = max(height / src_h, width / src_w) * rng.uniform(*zoom)
    crop_h = min(src_h, max(2, int(round(height / scale))))
    crop_w = min(src_w, max(2, int(round(width / scale))))
    top = int(rng.integers(0, src_h - crop_h + 1))
    left = int(rng.integers(0, src_w - crop_w + 1))
    patch = source[top:top + crop_h, left:left + crop_w]
    mode = "F" if patch.ndim == 2 else None
    if patch.ndim == 2:
        resized = np.asarray(Image.fromarray(patch, mode).resize((width, height), Image.BILINEAR))
    else:
        resized = np.asarray(Image.fromarray(patch.astype(np.uint8)).resize(
            (width, height), Image.BILINEAR), np.float32)
    return resized[:, ::-1] if rng.uniform() < 0.5 else resized


def _tint(grey, colour, rng):
    """Maps a grey texture onto a colour ramp around ``colour``."""
    colour = np.clip(np.asarray(colour, np.float32) + rng.normal(0, 12, 3), 0, 255)
    t = grey[..., None] / 255.0
    return np.clip(colour * (0.35 + 1.0 * t), 0, 255)


def texture(rng, name, height, width):
    """A [height, width, 3] float patch of the named photo texture."""
    spec = TEXTURES[name]
    source = _sample_image(spec.source)
    left, right, top, bottom = spec.region
    rows, cols = source.shape[:2]
    source = source[int(top * rows):int(bottom * rows), int(left * cols):int(right * cols)]
    patch = _crop(rng, source, height, width, TEXTURE_ZOOM)
    if patch.ndim == 2:
        patch = _tint(patch, spec.tint, rng)
    gain = rng.uniform(0.85, 1.15)
    return np.clip(patch * gain + np.asarray(spec.lift) + rng.normal(0, 6, 3), 0, 255)


def background(rng, height, width):
    """A crop of a random background photograph, [height, width, 3] float.

    Colour photographs stay as they are; grey ones get a faint colour cast,
    so that "tinted grey" is no cue for objects, whose grey textures are
    tinted strongly.
    """
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    patch = _crop(rng, _sample_image(name), height, width, (0.5, 1.5))
    if patch.ndim == 2:
        cast = 1.0 + rng.uniform(-BACKGROUND_CAST, BACKGROUND_CAST, 3)
        patch = np.clip(patch[..., None] * cast, 0, 255)
    return patch


def _smooth_field(rng, height, width, cells=4):
    """A smooth random field in about [-1, 1], [height, width]."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BICUBIC))


def object_mask(rng, shape, height, width, cy, cx, radius, deform):
    """Boolean [height, width] mask of one deformed object centred at (cy, cx).

    The warp is a smooth random displacement of about ``deform * radius``
    pixels, varying across the object (computed in its bounding box).
    """
    reach = 1.0 + deform
    top, bottom = max(0, int(cy - reach * radius)), min(height, int(cy + reach * radius) + 2)
    left, right = max(0, int(cx - reach * radius)), min(width, int(cx + reach * radius) + 2)
    mask = np.zeros((height, width), bool)
    if bottom - top < 2 or right - left < 2:
        return mask
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    if deform:
        yy = yy + deform * radius * _smooth_field(rng, bottom - top, right - left)
        xx = xx + deform * radius * _smooth_field(rng, bottom - top, right - left)
    u, v = synthetic.rotated_coordinates(yy, xx, cy, cx, radius, rng.uniform(0, 2 * np.pi))
    if shape == "horse":
        silhouette = _horse()
        h, w = silhouette.shape
        fit = 2.0 / max(h, w)
        row = np.round((v / fit) + h / 2).astype(np.int64)
        col = np.round((u / fit) + w / 2).astype(np.int64)
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        box = np.zeros(u.shape, bool)
        box[inside] = silhouette[row[inside], col[inside]]
    elif shape == "blob":
        r, theta = np.sqrt(u * u + v * v), np.arctan2(v, u)
        edge = 0.75 + sum(rng.uniform(0, 0.18) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                          for k in (2, 3, 5))
        box = r <= edge
    else:
        box = synthetic.shape_mask(shape, u, v)
    mask[top:bottom, left:right] = box
    return mask


def render(rng, spec):
    """Returns (image uint8 [H, W, 3], mask uint8 [H, W]) for one image of a domain."""
    low, high = spec.aspect[int(rng.integers(len(spec.aspect)))]
    aspect = rng.uniform(low, high)
    long_side = rng.uniform(*spec.long_side)
    height, width = (long_side / aspect, long_side) if aspect >= 1 else (long_side, long_side * aspect)
    height, width = max(32, int(round(height))), max(32, int(round(width)))
    image = background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    void = np.zeros((height, width), bool)
    void_width = max(1, int(round(min(height, width) / 100)))
    count = int(rng.integers(spec.objects[0], spec.objects[1] + 1))
    strong = rng.uniform() < 0.5
    groups = (range(1, spec.num_strong + 1), range(spec.num_strong + 1, len(spec.classes) + 1))
    one_group = rng.uniform() < spec.same_group
    for _ in range(count):
        if one_group:
            group = groups[0] if strong else groups[1]
            class_id = int(group[rng.integers(len(group))])
        else:
            class_id = int(rng.integers(1, len(spec.classes) + 1))
        look = spec.classes[class_id - 1]
        radius = rng.uniform(*spec.object_radius) * min(height, width)
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        obj = object_mask(rng, look.shape, height, width, cy, cx, radius, spec.deform)
        if obj.sum() < 30:
            continue
        fill = texture(rng, look.texture, height, width)
        image[obj] = fill[obj]
        mask[obj] = class_id
        void = (void & ~obj) | synthetic.border(obj, void_width)
    mask[void] = VOID_LABEL
    shade = 1.0 + 0.12 * _smooth_field(rng, height, width, cells=3)[..., None]
    image = np.clip(image * shade + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    return image, mask


def strong_classes(domain):
    """The domain's strong class names (the rest are weak)."""
    if domain == SHAPES_DOMAIN:
        return SHAPES_STRONG
    spec = DOMAINS[domain]
    return tuple(c.name for c in spec.classes[:spec.num_strong])


def generate_domain(domain, out_dir, num_train=240, num_val=60, seed=0):
    """Writes one domain as a VOC-layout set into ``out_dir``; returns its summary.

    The same domain and seed write byte-identical files. ``synthetic.json``
    records ``strong_classes``, half of the classes.

    Example:
        >>> generate_domain("photo", "/tmp/photo", num_train=20, num_val=5)["num_images"]
        25
    """
    if domain not in DOMAIN_NAMES:
        raise UsageError(f"--domain: unknown domain {domain!r} (choose from "
                         f"{', '.join(DOMAIN_NAMES)} or all)")
    if domain == SHAPES_DOMAIN:
        summary = synthetic.generate(out_dir, num_train, num_val, seed, extra_meta={
            "domain": domain, "strong_classes": list(SHAPES_STRONG)})
    else:
        spec = DOMAINS[domain]
        rng = np.random.default_rng([seed, DOMAIN_NAMES.index(domain)])
        names = ["background"] + [c.name for c in spec.classes]
        summary = synthetic.write_voc_set(
            out_dir, f"{domain}{seed:03d}", {"train": num_train, "val": num_val},
            lambda: render(rng, spec), names, {"domain": domain, "seed": seed,
                                               "strong_classes": list(strong_classes(domain))})
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="all", help=f"one of {', '.join(DOMAIN_NAMES)}, or all")
    parser.add_argument("--out_dir", required=True,
                        help="target folder (with --domain=all: one subfolder per domain)")
    parser.add_argument("--num_train", type=int, default=240)
    parser.add_argument("--num_val", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = DOMAIN_NAMES if args.domain == "all" else (args.domain,)
    for name in names:
        out = os.path.join(args.out_dir, name) if args.domain == "all" else args.out_dir
        summary = generate_domain(name, out, args.num_train, args.num_val, args.seed)
        print(json.dumps({k: summary[k] for k in ("out_dir", "domain", "num_images",
                                                   "strong_classes")}))


if __name__ == "__main__":
    main()
