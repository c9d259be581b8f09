"""The PASCAL VOC colour palette and palette-PNG writing."""

import numpy as np
from PIL import Image

from tss_keras.files import atomic_write


def voc_palette():
    """Returns the 256x3 uint8 VOC colour map (bit-interleaved, as VOC's devkit)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


_PALETTE = voc_palette()
# Colour (packed as r<<16|g<<8|b) -> index; the VOC map is a bijection.
_COLOUR_TO_INDEX = {int(r) << 16 | int(g) << 8 | int(b): i for i, (r, g, b) in enumerate(_PALETTE)}


def colours_to_ids(rgb, path):
    """Maps an HxWx3 VOC-coloured mask to class ids; unknown colours raise.

    Args:
        rgb: uint8 array [H, W, 3].
        path: the file it came from, for the error message.
    """
    from tss_keras.errors import DataError

    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    ids = []
    for colour in colours:
        if int(colour) not in _COLOUR_TO_INDEX:
            r, g, b = (int(colour) >> 16) & 255, (int(colour) >> 8) & 255, int(colour) & 255
            raise DataError(f"{path}: RGB mask colour ({r}, {g}, {b}) is not in the VOC palette")
        ids.append(_COLOUR_TO_INDEX[int(colour)])
    return np.asarray(ids, dtype=np.uint8)[inverse].reshape(rgb.shape[:2])


def save_palette_png(path, mask):
    """Writes a uint8 [H, W] class-id mask as a VOC palette PNG, atomically."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(_PALETTE.reshape(-1).tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def colorize(mask):
    """Returns the RGB rendering [H, W, 3] of a class-id mask."""
    return _PALETTE[np.asarray(mask, dtype=np.uint8)]
