"""Self-diffusion properties."""

import numpy as np
import tensorflow as tf

from tss_keras.transfer.diffusion import (affinity, cam_argmax_labels, propagate,
                                          scores_to_labels, transfer_scores)


def _inputs(rng, batch=2, size=32, classes=5):
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    fg = rng.uniform(0, 1, (batch, size, size, 1)).astype(np.float32)
    cams = rng.normal(0, 1, (batch, size // 4, size // 4, classes)).astype(np.float32)
    feats = rng.normal(0, 1, (batch, size // 4, size // 4, 8)).astype(np.float32)
    return images, fg, cams, feats


def test_labels_are_a_subset_of_the_image_labels():
    rng = np.random.default_rng(0)
    images, fg, cams, feats = _inputs(rng)
    labels = np.array([[0, 1, 0, 0, 1], [0, 0, 1, 0, 0]], np.float32)
    for source in ("color", "features", "both"):
        scores = transfer_scores(images, fg, cams, labels, feats, radius=2, iterations=5,
                                 feature_source=source, working_stride=2)
        assert scores.shape == (2, 32, 32, 6)
        out = scores_to_labels(scores, labels, confidence=0.0).numpy()
        assert set(np.unique(out[0])) <= {0, 2, 5}
        assert set(np.unique(out[1])) <= {0, 3}
    # CAMs of absent classes may be huge; they still never win.
    cams[..., 0] = 100.0
    scores = transfer_scores(images, np.ones_like(fg), cams, labels, feats, iterations=3)
    assert 1 not in scores_to_labels(scores, labels, 0.0).numpy()
    assert 1 not in cam_argmax_labels(cams, labels, (32, 32)).numpy()


def test_confidence_threshold_yields_void():
    rng = np.random.default_rng(1)
    images, _, cams, feats = _inputs(rng, batch=1)
    fg = np.full((1, 32, 32, 1), 0.5, np.float32)
    labels = np.array([[1, 1, 0, 0, 0]], np.float32)
    scores = transfer_scores(images, fg, cams, labels, feats, iterations=2)
    low = scores_to_labels(scores, labels, confidence=0.0).numpy()
    high = scores_to_labels(scores, labels, confidence=0.9).numpy()
    assert 255 not in low
    assert (high == 255).all()  # every winning score is at most 0.5 here


def test_constant_affinity_spreads_evenly():
    radius = 1
    guide = np.ones((1, 7, 7, 3), np.float32)
    transition = affinity([tf.constant(guide)], radius, [1.0]).numpy()
    centre = transition[0, 3, 3]
    np.testing.assert_allclose(centre, np.full(9, 1 / 9), atol=1e-6)
    corner = transition[0, 0, 0]
    assert np.isclose(corner.sum(), 1.0) and np.count_nonzero(corner) == 4
    seed = np.zeros((1, 7, 7, 1), np.float32)
    seed[0, 3, 3] = 1.0
    spread = propagate(tf.constant(seed), tf.constant(transition), radius, 1).numpy()[0, ..., 0]
    np.testing.assert_allclose(spread[2:5, 2:5], np.full((3, 3), 1 / 9), atol=1e-6)
    assert np.isclose(spread.sum(), 1.0) and spread[0].sum() == 0


def test_diffusion_follows_colour_edges():
    """A seed inside a colour region spreads within it, not across the edge."""
    image = np.zeros((1, 16, 16, 3), np.float32)
    image[:, :, 8:] = 255.0
    transition = affinity([tf.constant(image)], 2, [20.0])
    seed = np.zeros((1, 16, 16, 1), np.float32)
    seed[0, 8, 3] = 1.0
    spread = propagate(tf.constant(seed), transition, 2, 10).numpy()[0, ..., 0]
    assert spread[:, :8].sum() > 0.999 and spread[:, 8:].sum() < 1e-3
