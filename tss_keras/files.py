"""Atomic file writes: a crash never leaves half a file where another program reads it."""

import json
import os
import tempfile


def atomic_write(path, write_fn):
    """Calls ``write_fn(tmp_path)`` and renames the result onto ``path``.

    The temporary file sits next to ``path`` (same file system, so the rename
    is atomic) and keeps its extension, for writers that look at it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path, text):
    """Writes ``text`` (UTF-8), atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def write_json(path, data):
    """Writes ``data`` as indented JSON, atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    return atomic_write(path, write)


def save_model(model, path):
    """Saves a Keras model to a ``.keras`` file, atomically."""
    return atomic_write(path, model.save)
