"""Class-name lists: VOC's 21 by default, or one name per line from a file."""

from tss_keras.errors import DataError

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus",
    "car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
    "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

# labelme's class_names.txt starts with this line (class id -1) before
# `_background_` (id 0); we drop it so that line order equals class id.
_LABELME_IGNORE = "__ignore__"


def load_class_names(path=None):
    """Returns the class names, index = class id, 0 = background.

    Args:
        path: a text file with one name per line (line order = class id).
            A labelme ``class_names.txt`` (first line ``__ignore__``) loads as
            is. None gives VOC's 21 classes.

    Example:
        >>> load_class_names()[:2]
        ('background', 'aeroplane')
    """
    if not path:
        return VOC_CLASS_NAMES
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise DataError(f"{path}: cannot read class names file ({e.strerror})") from None
    if names and names[0] == _LABELME_IGNORE:
        names = names[1:]
    if len(names) < 2:
        raise DataError(f"{path}: needs at least two class names (background and one class)")
    if len(names) > 255:
        raise DataError(f"{path}: {len(names)} classes; at most 255 fit in 8-bit masks (255 is void)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}: duplicate class names {duplicates}")
    return tuple(names)


def resolve_class(token, class_names, source):
    """Returns the class id for ``token``, a class name or an integer id.

    Args:
        token: e.g. ``"cat"`` or ``"8"``.
        class_names: the class-name list.
        source: where the token came from (a flag or file:line), for errors.
    """
    token = token.strip()
    if token in class_names:
        return class_names.index(token)
    if token.isdigit() and int(token) < len(class_names):
        return int(token)
    raise DataError(
        f"{source}: unknown class {token!r} (known: {', '.join(class_names)})")
