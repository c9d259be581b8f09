"""Evaluation: confusion matrix, IoU conventions, cross-check with keras MeanIoU, replicas."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tss_keras.errors import DataError
from tss_keras.data.pools import ClassSplit
from tss_keras.evaluation.confusion import iou_per_class, mean_iou
from tss_keras.data.voc import read_image, read_mask
from tss_keras.evaluation.confusion import confusion_matrix
from tss_keras.evaluation.evaluator import evaluate_confusion, predict_probabilities
from tss_keras.evaluation.report import add_baseline_ratio, build_results, format_table

NAMES = ("background", "a", "b", "c", "d")


def test_miou_matches_keras_mean_iou():
    rng = np.random.default_rng(0)
    truth = rng.choice([0, 1, 2, 3, 255], (3, 40, 50), p=[0.4, 0.2, 0.2, 0.1, 0.1])
    prediction = np.where(rng.uniform(size=truth.shape) < 0.7, truth % 255,
                          rng.integers(0, 4, truth.shape))
    confusion = confusion_matrix(prediction, truth, 5)
    metric = keras.metrics.MeanIoU(num_classes=5, ignore_class=255)
    metric.update_state(truth, prediction)
    # class 4 never occurs: null IoU, left out of the mean, as in MeanIoU
    assert np.isnan(iou_per_class(confusion)[4])
    np.testing.assert_allclose(mean_iou(confusion), float(metric.result()), rtol=1e-6)
    assert confusion.sum() == (truth != 255).sum()


def test_two_replicas_on_mixed_sizes_give_the_same_confusion(two_replicas, synth_dir,
                                                            class_names):
    """Images of different sizes: padding them would change a P-Net's image pooling."""
    from tss_keras.data.voc import load_split
    from tss_keras.models.encoder import build_encoder
    from tss_keras.models.pnet import build_pnet

    records, _ = load_split(synth_dir, "val", class_names)
    assert len({(r.height, r.width) for r in records}) > 1
    keras.utils.set_random_seed(1)
    with two_replicas.scope():
        model = build_pnet(build_encoder("tiny", 16), len(class_names), aspp_filters=8,
                           aspp_rates=(1, 2))
    single = evaluate_confusion(model, records, len(class_names), verbose=0)
    double = evaluate_confusion(model, records, len(class_names), two_replicas, verbose=0)
    np.testing.assert_array_equal(single, double)
    per_image = sum(confusion_matrix(
        tf.argmax(model(read_image(r.image_path)[None].astype("float32")), -1).numpy(),
        read_mask(r.mask_path, len(class_names))[None], len(class_names)) for r in records)
    np.testing.assert_array_equal(single, per_image)
    # an odd number of images: the padding entries of the shorter shard count for nothing
    odd = evaluate_confusion(model, records[:5], len(class_names), two_replicas, verbose=0)
    assert odd.sum() == sum((read_mask(r.mask_path, len(class_names)) != 255).sum()
                            for r in records[:5])


def test_flip_and_scales_average_the_right_predictions():
    """Flip and multi-scale evaluation against the same computation written out by hand."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((None, None, 3)),
                              keras.layers.Conv2D(5, (3, 5), padding="same")])
    images = np.random.default_rng(1).uniform(0, 255, (1, 24, 32, 3)).astype(np.float32)
    softmax = lambda x: tf.nn.softmax(model(x), -1)  # noqa: E731
    expected_flip = (softmax(images) + tf.reverse(softmax(images[:, :, ::-1]), [2])) / 2
    np.testing.assert_allclose(predict_probabilities(model, images, flip=True), expected_flip,
                               atol=1e-6)
    half = tf.image.resize(images, (12, 16))
    expected_scales = (tf.image.resize(softmax(half), (24, 32)) + softmax(images)) / 2
    np.testing.assert_allclose(predict_probabilities(model, images, scales=(0.5, 1.0)),
                               expected_scales, atol=1e-6)
    # the model is not flip-symmetric, so flipping must change the answer
    assert not np.allclose(softmax(images), expected_flip, atol=1e-3)


def test_results_and_baseline_ratio(tmp_path):
    confusion = np.diag([100, 50, 40, 0, 30]).astype(np.int64)
    confusion[1, 2] = 50
    split = ClassSplit(frozenset({1, 2}), frozenset({3, 4}))
    results = build_results(confusion, NAMES, split, 7)
    assert results["per_class_iou"]["c"] is None
    assert results["per_class_iou"]["a"] == pytest.approx(0.5)
    assert results["miou_weak"] == pytest.approx(1.0)  # d only; c is null
    assert results["num_images"] == 7
    baseline = dict(results, miou=results["miou"] * 2, miou_weak=0.5)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    add_baseline_ratio(results, str(path))
    assert results["ratio_to_baseline"]["miou"] == pytest.approx(0.5)
    assert results["ratio_to_baseline"]["miou_weak"] == pytest.approx(2.0)
    assert "ratio to baseline" in format_table(results)
    with pytest.raises(DataError, match="missing.json: --baseline_results file not found"):
        add_baseline_ratio(results, str(tmp_path / "missing.json"))
    path.write_text(json.dumps(dict(baseline, class_names=["background", "x"])))
    with pytest.raises(DataError, match="another class list"):
        add_baseline_ratio(results, str(path))


def test_lnet_health_reports_what_share_of_each_class_the_agnostic_map_finds(tmp_path):
    from types import SimpleNamespace

    from tss_keras.data.palette import save_palette_png
    from tss_keras.transfer.evaluate import (PRIOR_GRID, PositionPrior, lnet_health,
                                             missed_classes)

    mask = np.zeros((20, 20), np.uint8)
    mask[:10, :10] = 1            # class 1: 100 pixels, the map finds all of them
    mask[10:, 10:] = 2            # class 2: 100 pixels, the map finds 25
    mask[0, 19] = 255
    save_palette_png(str(tmp_path / "m.png"), mask)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "i.png")
    found = np.zeros((1, 20, 20, 1), np.float32)
    found[0, :10, :10] = 0.9
    found[0, 10:15, 10:15] = 0.9
    found[0, :5, 15:19] = 0.9     # 20 background pixels called foreground

    class Transfer:
        def view(self, images):
            return SimpleNamespace(foreground=tf.constant(found),
                                   logits=tf.constant([[2.0, -1.0, -3.0]]))

    record = SimpleNamespace(image_path=str(tmp_path / "i.png"), mask_path=str(tmp_path / "m.png"),
                             labels={1, 2})
    left_half = np.zeros((PRIOR_GRID, PRIOR_GRID))
    left_half[:, :PRIOR_GRID // 2] = 1.0
    health = lnet_health(Transfer(), [record], 4, PositionPrior(left_half, 0.5))
    assert health["found"] == {1: 1.0, 2: 0.25}   # class 3 is in no mask: not reported
    np.testing.assert_allclose(health["agnostic_iou"], 125 / 220)
    # the prior calls the left half foreground: class 1's 100 pixels of a 300-pixel union
    np.testing.assert_allclose(health["prior_iou"], 100 / 300)
    assert health["classifier_map"] == 1.0 and health["chance_map"] == 1.0
    # the lnet stage names the weak classes found under 20 %, not the strong ones
    assert missed_classes({1: 0.1, 2: 0.25, 3: 0.05}, classes={2, 3}) == [3]


def test_position_prior_keeps_where_masks_usually_have_foreground_at_the_best_threshold():
    from tss_keras.transfer.evaluate import PositionPrior

    masks = [np.zeros((16, 16), np.uint8) for _ in range(3)]
    for mask in masks:
        mask[:, :8] = 1                 # every mask: an object on the left half
    masks[0][:4, 8:] = 2                # one mask: a small object at the top right
    masks[1][15, 15] = 255
    prior = PositionPrior.fit(masks)
    # The top right is foreground in 1 of 3 masks; calling it foreground would
    # cost more IoU (416 / 480) than missing it (384 / 416), so only the left half stays.
    assert 1 / 3 < prior.threshold <= 1.0
    predicted = prior.predict((40, 60))     # any image size: coordinates are relative
    assert predicted.shape == (40, 60)
    assert predicted[:, :30].all() and not predicted[:, 30:].any()
    # Foreground everywhere: threshold 0 (all foreground) is one of the choices.
    everywhere = PositionPrior.fit([np.ones((8, 8), np.uint8)])
    assert everywhere.predict((5, 7)).all()
