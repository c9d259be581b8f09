"""tf.data pipelines: shapes, dtypes, and void handling under augmentation."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import STRONG
from tss_keras.data.pipeline import (augment, color_jitter, eval_dataset, strong_dataset,
                                     weak_dataset, zip_streams)
from tss_keras.data.pools import build_pools, parse_strong_classes
from tss_keras.data.voc import load_split
from tss_keras.config import RunConfig
from tss_keras.stages.lnet import lnet_streams


@pytest.fixture(scope="module")
def pools(synth_dir, class_names):
    records, _ = load_split(synth_dir, "train", class_names)
    return build_pools(records, parse_strong_classes(STRONG, class_names))


def _blocky_mask(height=60, width=80, void=True):
    rng = np.random.default_rng(0)
    mask = np.repeat(np.repeat(rng.integers(0, 4, (6, 8)), 10, 0), 10, 1).astype(np.uint8)
    if void:
        mask[20:30, :] = 255
    return mask[:height, :width, None]


def test_strong_and_weak_stream_shapes(pools, class_names):
    strong = strong_dataset(pools.strong, len(class_names), (64, 48), 2, seed=1)
    weak = weak_dataset(pools.weak, len(class_names), (64, 48), 3, seed=1)
    s, w = next(iter(zip_streams(strong, weak)))
    assert s["image"].shape == (2, 64, 48, 3) and s["image"].dtype == tf.float32
    assert s["mask"].shape == (2, 64, 48, 1) and s["mask"].dtype == tf.uint8
    assert w["image"].shape == (3, 64, 48, 3)
    assert w["labels"].shape == (3, len(class_names) - 1) and w["labels"].dtype == tf.float32
    values = set(np.unique(s["mask"].numpy()))
    assert values <= set(range(len(class_names))) | {255}
    assert 0.0 <= float(tf.reduce_min(s["image"])) and float(tf.reduce_max(s["image"])) <= 255.0


def test_weak_stream_with_pseudo_labels(pools, class_names, tmp_path):
    from tss_keras.data.palette import save_palette_png
    from tss_keras.data.voc import image_size

    paths = []
    for example in pools.weak:
        path = str(tmp_path / f"{example.image_id}.png")
        save_palette_png(path, np.full(image_size(example.image_path), 4, np.uint8))
        paths.append(path)
    ds = weak_dataset(pools.weak, len(class_names), (40, 40), 2, pseudo_label_paths=paths)
    batch = next(iter(ds))
    assert batch["mask"].shape == (2, 40, 40, 1)
    assert set(np.unique(batch["mask"].numpy())) <= {4, 255}


def test_weak_stream_voids_pseudo_labels_of_the_given_classes(pools, class_names, tmp_path):
    from tss_keras.data.palette import save_palette_png
    from tss_keras.data.voc import image_size

    paths = []
    for example in pools.weak:
        height, width = image_size(example.image_path)
        rows, cols = np.mgrid[0:height, 0:width] // 8
        path = str(tmp_path / f"{example.image_id}.png")
        save_palette_png(path, np.where((rows + cols) % 2 == 0, 1, 4).astype(np.uint8))
        paths.append(path)
    stream = dict(num_classes=len(class_names), crop_size=(40, 40), batch_size=4,
                  pseudo_label_paths=paths, seed=0)
    kept = next(iter(weak_dataset(pools.weak, **stream)))["mask"].numpy()
    voided = next(iter(weak_dataset(pools.weak, void_pseudo_classes=(1,), **stream)))["mask"]
    voided = voided.numpy()
    assert (kept == 1).mean() > 0.3 and (kept == 4).mean() > 0.3
    assert not (voided == 1).any()
    np.testing.assert_array_equal(voided == 255, (kept == 1) | (kept == 255))
    np.testing.assert_array_equal(voided[kept == 4], 4)


def test_no_void_appears_inside_the_image_and_classes_survive():
    mask = _blocky_mask(void=False)
    image = np.zeros(mask.shape[:2] + (3,), np.uint8)
    for scale in (1.0, 1.5, 2.0):
        _, (out,) = augment(image, (mask,), (48, 48), scale=scale, seed=3)
        out = out.numpy()
        assert 255 not in out, f"class pixel became void at scale {scale}"
        assert set(np.unique(out)) <= set(np.unique(mask))


def test_void_only_at_padding_when_image_is_smaller_than_crop():
    mask = _blocky_mask(40, 50, void=False)
    image = np.zeros((40, 50, 3), np.uint8)
    _, (out,) = augment(image, (mask,), (64, 64), scale=1.0, flip=False)
    out = out.numpy()[..., 0]
    assert (out == 255).sum() == 64 * 64 - 40 * 50
    np.testing.assert_array_equal(out[:40, :50], mask[..., 0])
    image_out, _ = augment(image, (mask,), (64, 64), scale=1.0, flip=False)
    np.testing.assert_allclose(image_out.numpy()[50, 60], [123.675, 116.28, 103.53], atol=1e-3)


def _nearest(mask, height, width):
    """NumPy nearest-neighbour resize with half-pixel centres (what the pipeline must do)."""
    rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int),
                      mask.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int),
                      mask.shape[1] - 1)
    return mask[rows][:, cols]


def _is_window(out, full):
    """Whether ``out`` is a window of ``full`` (or of its mirror image)."""
    h, w = out.shape
    for candidate in (full, full[:, ::-1]):
        for y in range(candidate.shape[0] - h + 1):
            for x in range(candidate.shape[1] - w + 1):
                if np.array_equal(candidate[y:y + h, x:x + w], out):
                    return True
    return False


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.0, 1.7])
def test_void_pixels_never_become_a_class(scale):
    """The augmented label is exactly a window of the nearest-resized, void-padded mask."""
    mask = _blocky_mask()[..., 0]
    image = np.zeros(mask.shape + (3,), np.uint8)
    _, (out,) = augment(image, (mask[..., None],), (40, 40), scale=scale, seed=7)
    height, width = (int(round(d * scale)) for d in mask.shape)
    full = _nearest(mask, height, width)
    full = np.pad(full, [[0, max(0, 40 - height)], [0, max(0, 40 - width)]], constant_values=255)
    assert _is_window(out.numpy()[..., 0], full), scale


def test_eval_pipeline_is_deterministic_and_unaugmented(synth_dir, class_names):
    records, _ = load_split(synth_dir, "val", class_names)
    first = [b["mask"].numpy() for b in eval_dataset(records, len(class_names))]
    second = [b["mask"].numpy() for b in eval_dataset(records, len(class_names))]
    assert len(first) == len(records)
    for a, b, record in zip(first, second, records):
        np.testing.assert_array_equal(a, b)
        assert a.shape == (1, record.height, record.width, 1)
    padded = next(iter(eval_dataset(records, len(class_names), batch_size=2, max_size=(200, 240))))
    assert padded["image"].shape == (2, 200, 240, 3)
    assert (padded["mask"].numpy()[0, records[0].height:, :, 0] == 255).all()


def test_seeded_streams_are_the_same_every_time(pools, class_names):
    """Parallel map calls run in any order; a seeded stream must not depend on it."""
    def batches(seed):
        ds = strong_dataset(pools.strong, len(class_names), (40, 40), 4, seed=seed)
        return [b["image"].numpy() for b, _ in zip(ds, range(6))]
    first, second, other = batches(5), batches(5), batches(6)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_colour_jitter_changes_only_the_images_colours_and_is_seeded(pools, class_names):
    """--lnet_color_jitter: the same crops and masks as without it, other colours."""
    def first_batches(jitter, seed=5):
        ds = strong_dataset(pools.strong, len(class_names), (40, 40), 4, seed=seed, jitter=jitter)
        return [(b["image"].numpy(), b["mask"].numpy()) for b, _ in zip(ds, range(3))]
    plain, jittered, again = first_batches(0.0), first_batches(0.5), first_batches(0.5)
    for (plain_image, plain_mask), (image, mask), (image_again, _) in zip(plain, jittered, again):
        np.testing.assert_array_equal(mask, plain_mask)
        np.testing.assert_array_equal(image, image_again)
        assert 0.0 <= image.min() and image.max() <= 255.0
        assert np.abs(image - plain_image).mean() > 5.0


def test_colour_jitter_turns_the_hue_but_keeps_the_image_structure():
    image = np.zeros((16, 16, 3), np.float32)
    image[4:12, 4:12] = (200.0, 40.0, 40.0)  # a red square on black
    hues = set()
    for i in range(8):
        out = color_jitter(tf.constant(image), 1.0, tf.constant([i, 0], tf.int64)).numpy()
        inside, outside = out[4:12, 4:12].reshape(-1, 3), out[:4].reshape(-1, 3)
        assert np.ptp(inside, axis=0).max() < 1e-3  # a flat square stays flat
        assert inside.sum(axis=1).mean() > outside.sum(axis=1).mean()
        hues.add(int(np.argmax(inside[0])))
    assert len(hues) >= 2  # the dominant channel is not always red any more
    np.testing.assert_array_equal(color_jitter(tf.constant(image), 0.0).numpy(), image)


@pytest.mark.parametrize("view", ["crop", "image"])
def test_lnet_mask_view_sets_what_the_agnostic_head_sees(pools, class_names, view):
    """--lnet_mask_view: the agnostic head's batches are --crop_size crops or canvas-sized."""
    config = RunConfig().replace(crop_size=(40, 40), lnet_mask_view=view, seed=3)
    make_stream = lnet_streams(config, pools.strong, len(class_names), pools.weak,
                               len(class_names), image_size=72, batch_size=4)
    masked, labelled = next(iter(make_stream(0, 1)))
    side = 72 if view == "image" else 40
    assert masked["image"].shape == (4, side, side, 3)
    assert masked["mask"].shape == (4, side, side, 1)
    assert labelled["image"].shape == (4, 72, 72, 3)
