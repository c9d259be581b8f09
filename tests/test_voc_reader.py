"""The VOC-layout reader: mask formats, the label-list path and every bad input."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import run_module
from tss_keras.errors import DataError
from tss_keras.data.palette import colorize, save_palette_png
from tss_keras.data.voc import load_split, read_mask


def _first_id(data_dir, split="train"):
    with open(os.path.join(data_dir, "ImageSets", "Segmentation", f"{split}.txt")) as f:
        return f.readline().strip()


def test_palette_png_indices_are_class_ids(tmp_path):
    mask = np.array([[0, 1, 2], [255, 6, 0]], np.uint8)
    path = str(tmp_path / "m.png")
    save_palette_png(path, mask)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_mask(path, 7), mask)


def test_grayscale_sbd_mask_reads_same_values(synth_copy, class_names):
    image_id = _first_id(synth_copy)
    palette_path = os.path.join(synth_copy, "SegmentationClass", image_id + ".png")
    expected = read_mask(palette_path, len(class_names))
    os.makedirs(os.path.join(synth_copy, "SegmentationClassAug"))
    gray_path = os.path.join(synth_copy, "SegmentationClassAug", image_id + ".png")
    Image.fromarray(expected, mode="L").save(gray_path)
    os.remove(palette_path)
    np.testing.assert_array_equal(read_mask(gray_path, len(class_names)), expected)
    records, _ = load_split(synth_copy, "train", class_names)
    record = next(r for r in records if r.image_id == image_id)
    assert record.mask_path == gray_path and record.labels


def test_rgb_voc_colour_mask_is_mapped(tmp_path):
    mask = np.array([[0, 3], [255, 5]], np.uint8)
    path = str(tmp_path / "rgb.png")
    Image.fromarray(colorize(mask)).save(path)
    np.testing.assert_array_equal(read_mask(path, 7), mask)


def test_label_list_for_images_without_masks(synth_copy, class_names):
    ids = open(os.path.join(synth_copy, "ImageSets", "Segmentation", "train.txt")).read().split()
    for image_id in ids[:3]:
        os.remove(os.path.join(synth_copy, "SegmentationClass", image_id + ".png"))
    with open(os.path.join(synth_copy, "ImageSets", "Segmentation", "train_labels.txt"), "w") as f:
        f.write(f"{ids[0]} ring cross\n{ids[1]} 2\n{ids[2]} background disc 6\n")
    records, _ = load_split(synth_copy, "train", class_names)
    by_id = {r.image_id: r for r in records}
    assert by_id[ids[0]].mask_path is None and by_id[ids[0]].labels == {4, 5}
    assert by_id[ids[1]].labels == {2}
    assert by_id[ids[2]].labels == {1, 6}
    assert by_id[ids[3]].mask_path is not None


# Each bad input: a function that damages a copy of the set, and the text the
# one-line error must contain (file name and problem).
def _truncate_image(d, i):
    path = os.path.join(d, "JPEGImages", i + ".jpg")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])
    return path, "truncated"


def _missing_mask(d, i):
    path = os.path.join(d, "SegmentationClass", i + ".png")
    os.remove(path)
    return path, "missing mask"


def _size_mismatch(d, i):
    path = os.path.join(d, "SegmentationClass", i + ".png")
    save_palette_png(path, np.zeros((10, 12), np.uint8))
    return path, "differs from image size"


def _bad_values(d, i):
    path = os.path.join(d, "SegmentationClass", i + ".png")
    mask = np.asarray(Image.open(path)).copy()
    mask[0, 0] = 9
    save_palette_png(path, mask)
    return path, "mask values [9] outside 0..6"


def _rgb_not_in_palette(d, i):
    path = os.path.join(d, "SegmentationClass", i + ".png")
    size = Image.open(path).size
    Image.new("RGB", size, (1, 2, 3)).save(path)
    return path, "(1, 2, 3) is not in the VOC palette"


def _id_without_image(d, i):
    path = os.path.join(d, "JPEGImages", i + ".jpg")
    os.remove(path)
    return path, "no image for id"


def _not_an_image(d, i):
    path = os.path.join(d, "JPEGImages", i + ".jpg")
    open(path, "wb").write(b"this is not a jpeg")
    return path, "not a readable image"


BAD_INPUTS = [_truncate_image, _missing_mask, _size_mismatch, _bad_values, _rgb_not_in_palette,
              _id_without_image, _not_an_image]


@pytest.mark.parametrize("damage", BAD_INPUTS, ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_one_line_error_naming_file(synth_copy, damage):
    path, problem = damage(synth_copy, _first_id(synth_copy))
    result = run_module("trainers.inspect_data", f"--data_dir={synth_copy}",
                        f"--class_names_file={synth_copy}/class_names.txt")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert path in lines[0] and problem in lines[0], lines[0]


def test_skip_bad_lists_every_bad_file(synth_copy):
    ids = open(os.path.join(synth_copy, "ImageSets", "Segmentation", "train.txt")).read().split()
    expected = {damage(synth_copy, image_id)[0] for damage, image_id in zip(BAD_INPUTS, ids)}
    result = run_module("trainers.inspect_data", f"--data_dir={synth_copy}",
                        f"--class_names_file={synth_copy}/class_names.txt", "--skip_bad")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {b["file"] for b in report["bad_files"]} == expected
    assert report["num_images"] == len(ids) - len(expected)


def test_empty_split_and_unknown_classes(synth_copy):
    split = os.path.join(synth_copy, "ImageSets", "Segmentation", "empty.txt")
    open(split, "w").close()
    names = f"--class_names_file={synth_copy}/class_names.txt"
    result = run_module("trainers.inspect_data", f"--data_dir={synth_copy}", "--split=empty", names)
    assert result.returncode != 0 and f"{split}: split 'empty' is empty" in result.stderr
    result = run_module("trainers.inspect_data", f"--data_dir={synth_copy}", names,
                        "--strong_classes=disc,unicorn")
    assert result.returncode != 0
    assert "--strong_classes: unknown class 'unicorn'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    labels = os.path.join(synth_copy, "ImageSets", "Segmentation", "train_labels.txt")
    first = _first_id(synth_copy)
    open(labels, "w").write(f"{first} disc zebra\n")
    result = run_module("trainers.inspect_data", f"--data_dir={synth_copy}", names)
    assert result.returncode != 0 and f"{labels}:1: unknown class 'zebra'" in result.stderr


def test_inspect_data_report(synth_dir, class_names):
    result = run_module("trainers.inspect_data", f"--data_dir={synth_dir}",
                        f"--class_names_file={synth_dir}/class_names.txt",
                        "--strong_classes=disc,square,triangle")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["num_images"] == 24
    assert set(report["class_image_counts"]) == set(class_names)
    assert report["class_image_counts"]["background"] == 24
    assert report["void_pixels"] > 0
    assert report["strong_pool"] + report["weak_pool"] == 24
    assert report["strong_pool"] > 0 and report["weak_pool"] > 0
    assert "bad_files" not in report


def test_loader_raises_dataerror_directly(synth_copy, class_names):
    _missing_mask(synth_copy, _first_id(synth_copy))
    with pytest.raises(DataError, match="missing mask"):
        load_split(synth_copy, "train", class_names)


def test_split_fallback_picks_first_existing(synth_dir, class_names):
    from tss_keras.data.voc import resolve_split

    assert resolve_split(synth_dir, "train_aug,train") == "train"
    assert resolve_split(synth_dir, "val") == "val"
    records, _ = load_split(synth_dir, "train_aug,train", class_names)
    assert len(records) == 24


def test_voc_flags_parse_as_users_type_them():
    """voc.flags at the repository root parses with trainers.run's flags."""
    result = run_module("trainers.run", "--flagfile=voc.flags", "--data_dir=/nonexistent/VOC2012",
                        "--model_dir=/tmp/tss_voc_flags_check", "--stages=data")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: /nonexistent/VOC2012: data directory does not exist")
