"""Class split, pools, and the guarantee that weak masks are unreachable."""

import dataclasses
import os

import pytest

from conftest import STRONG
from tss_keras.errors import DataError
from tss_keras.data.pipeline import weak_dataset
from tss_keras.data.pools import WeakExample, build_pools, parse_strong_classes
from tss_keras.data.voc import load_split


def test_parse_strong_classes(class_names):
    split = parse_strong_classes(STRONG, class_names)
    assert split.strong == {1, 2, 3} and split.weak == {4, 5, 6}
    assert parse_strong_classes("1,ring", class_names).strong == {1, 4}
    assert parse_strong_classes("all", class_names).weak == frozenset()
    assert parse_strong_classes("none", class_names).strong == frozenset()
    with pytest.raises(DataError, match="--strong_classes: unknown class 'zebra'"):
        parse_strong_classes("disc,zebra", class_names)
    with pytest.raises(DataError, match="background"):
        parse_strong_classes("background", class_names)


def test_pools_follow_design(synth_dir, class_names):
    records, _ = load_split(synth_dir, "train", class_names)
    split = parse_strong_classes(STRONG, class_names)
    pools = build_pools(records, split)
    assert pools.strong and pools.weak
    assert len(pools.strong) + len(pools.weak) == len(records)
    for example in pools.strong:
        assert example.labels <= split.strong
    for example in pools.weak:
        assert example.labels & split.weak
    everything = build_pools(records, parse_strong_classes("all", class_names))
    assert len(everything.strong) == len(records) and not everything.weak
    nothing = build_pools(records, parse_strong_classes("none", class_names))
    assert not nothing.strong


def test_weak_example_cannot_hold_a_mask(synth_dir, class_names):
    assert {f.name for f in dataclasses.fields(WeakExample)} == {"image_id", "image_path", "labels"}
    records, _ = load_split(synth_dir, "train", class_names)
    pools = build_pools(records, parse_strong_classes(STRONG, class_names))
    mask_paths = {r.mask_path for r in records}
    for example in pools.weak:
        assert not set(map(str, dataclasses.astuple(example))) & mask_paths


def test_weak_stream_runs_with_weak_masks_deleted(synth_copy, class_names):
    records, _ = load_split(synth_copy, "train", class_names)
    pools = build_pools(records, parse_strong_classes(STRONG, class_names))
    for example in pools.weak:
        os.remove(os.path.join(synth_copy, "SegmentationClass", example.image_id + ".png"))
    ds = weak_dataset(pools.weak, len(class_names), (48, 48), 4, repeat=False, shuffle=False)
    batches = list(ds)
    assert len(batches) == len(pools.weak) // 4
    assert set(batches[0]) == {"image", "labels"}
