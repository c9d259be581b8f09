"""The embedded data set generator."""

import filecmp
import os

import numpy as np
from PIL import Image

from tss_keras.data import synthetic


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_same_seed_writes_identical_files(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    for directory, seed in ((a, 5), (b, 5), (c, 6)):
        synthetic.generate(directory, num_train=8, num_val=2, seed=seed)
    files = _files(a)
    assert files == _files(b)
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    images = [f for f in files if f.startswith("JPEGImages")]
    first_c = sorted(f for f in _files(c) if f.startswith("JPEGImages"))[0]
    assert open(os.path.join(a, images[0]), "rb").read() != open(os.path.join(c, first_c), "rb").read()


def test_voc_layout_and_formats(tmp_path):
    out = str(tmp_path / "s")
    summary = synthetic.generate(out, num_train=10, num_val=3, seed=1)
    assert summary["num_images"] == 13
    ids = open(os.path.join(out, "ImageSets/Segmentation/train.txt")).read().split()
    assert len(ids) == 10
    mask = Image.open(os.path.join(out, "SegmentationClass", ids[0] + ".png"))
    image = Image.open(os.path.join(out, "JPEGImages", ids[0] + ".jpg"))
    assert mask.mode == "P" and image.format == "JPEG" and mask.size == image.size
    values = set(np.unique(np.asarray(mask)))
    assert 255 in values and values <= set(range(7)) | {255}


def test_agnostic_categories_are_disjoint(tmp_path):
    main = synthetic.generate(str(tmp_path / "m"), 2, 1, category_set="main")["class_names"]
    agnostic = synthetic.generate(str(tmp_path / "a"), 2, 1, category_set="agnostic")["class_names"]
    assert set(main[1:]).isdisjoint(agnostic[1:])
    assert len(main) - 1 >= 4 and len(agnostic) - 1 >= 3
