"""Evaluation: confusion matrix, IoU conventions, cross-check with keras MeanIoU, replicas."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tss_keras.data.errors import DataError
from tss_keras.data.pools import ClassSplit
from tss_keras.evaluation.confusion import iou_per_class, mean_iou
from tss_keras.evaluation.evaluator import batch_confusion, evaluate_confusion
from tss_keras.evaluation.report import add_baseline_ratio, build_results, format_table

NAMES = ("background", "a", "b", "c", "d")


def test_miou_matches_keras_mean_iou():
    rng = np.random.default_rng(0)
    truth = rng.choice([0, 1, 2, 3, 255], (3, 40, 50), p=[0.4, 0.2, 0.2, 0.1, 0.1])
    prediction = np.where(rng.uniform(size=truth.shape) < 0.7, truth % 255,
                          rng.integers(0, 4, truth.shape))
    confusion = batch_confusion(prediction, truth, 5).numpy()
    metric = keras.metrics.MeanIoU(num_classes=5, ignore_class=255)
    metric.update_state(truth, prediction)
    # class 4 never occurs: null IoU, left out of the mean, as in MeanIoU
    assert np.isnan(iou_per_class(confusion)[4])
    np.testing.assert_allclose(mean_iou(confusion), float(metric.result()), rtol=1e-6)
    assert confusion.sum() == (truth != 255).sum()


def test_streaming_confusion_is_the_same_on_two_replicas(two_replicas):
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(5, 3, padding="same")])
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (6, 24, 24, 3)).astype(np.float32)
    masks = rng.choice([0, 1, 2, 255], (6, 24, 24, 1)).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "mask": masks}).batch(2)
    single = evaluate_confusion(model, dataset, 5, verbose=0)
    double = evaluate_confusion(model, dataset, 5, two_replicas, verbose=0)
    np.testing.assert_array_equal(single, double)
    assert single.sum() == (masks != 255).sum()
    flipped = evaluate_confusion(model, dataset, 5, flip=True, scales=(0.75, 1.0), verbose=0)
    assert flipped.sum() == single.sum()


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
