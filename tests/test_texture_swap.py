"""Object texture swap (--lnet_texture_swap): what the agnostic head and the classifier see."""

import numpy as np
import tensorflow as tf

from loop_helpers import run_loop, weights

from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import build_lnet
from tss_keras.training import losses
from tss_keras.training.lnet_model import LNetTrainer
from tss_keras.training.optimizers import make_optimizer
from tss_keras.training.texture_swap import (draw_swapped, random_textures, swap_batch,
                                               swap_object_textures, swap_seed)


def _scene():
    """Three flat images, each with a 4x4 object, a void strip and background."""
    images = np.stack([np.full((12, 12, 3), v, np.float32) for v in (10.0, 20.0, 30.0)])
    masks = np.zeros((3, 12, 12, 1), np.uint8)
    masks[:, 2:6, 2:6] = 1
    masks[:, 10:, :] = 255
    return images, masks


def test_swapped_objects_and_void_take_the_texture_and_the_background_stays():
    images, masks = _scene()
    textures = np.full((3, 12, 12, 3), 200.0, np.float32)
    out = swap_object_textures(tf.constant(images), tf.constant(masks),
                               tf.constant([True, False, True]), tf.constant(textures)).numpy()
    for i in (0, 2):
        np.testing.assert_array_equal(out[i, 2:6, 2:6], textures[i, 2:6, 2:6])
        np.testing.assert_array_equal(out[i, 10:], textures[i, 10:])  # void: object edges
        background = masks[i, ..., 0] == 0
        np.testing.assert_array_equal(out[i][background], images[i][background])
    np.testing.assert_array_equal(out[1], images[1])  # not swapped


def test_random_textures_vary_in_colour_and_grain_and_are_seeded():
    seed = tf.constant([3, 1])
    textures = random_textures(16, 40, 24, seed).numpy()
    assert textures.shape == (16, 40, 24, 3)
    assert textures.min() >= 0 and textures.max() <= 255
    means = textures.mean(axis=(1, 2))
    assert means.std(axis=0).min() > 30  # colours differ from image to image
    assert np.median(textures.std(axis=(1, 2))) > 5  # not flat
    np.testing.assert_array_equal(textures, random_textures(16, 40, 24, seed).numpy())
    assert not np.allclose(textures, random_textures(16, 40, 24, tf.constant([4, 1])).numpy())


def test_the_swap_draw_follows_the_fraction_and_is_seeded_by_the_step():
    assert not draw_swapped(64, 0.0, swap_seed(3)).numpy().any()
    assert draw_swapped(64, 1.0, swap_seed(3)).numpy().all()
    half = draw_swapped(2000, 0.5, swap_seed(3)).numpy()
    assert 0.45 < half.mean() < 0.55
    np.testing.assert_array_equal(half, draw_swapped(2000, 0.5, swap_seed(3)).numpy())
    assert (half != draw_swapped(2000, 0.5, swap_seed(4)).numpy()).any()


def _trainer(texture_swap, mask_labels_for_cls=True):
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=3)
    trainer = LNetTrainer(lnet, 3, cam_pixel_weight=1.0, texture_swap=texture_swap,
                          mask_labels_for_cls=mask_labels_for_cls)
    trainer.compile(optimizer=make_optimizer("adam", 1e-3, 10, 0.0))
    return trainer


def _data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    masks = np.zeros((4, 32, 32, 1), np.uint8)
    masks[:, 8:20, 8:20] = 1
    masks[1:3, 20:28, 4:12] = 2
    labels = rng.integers(0, 2, (4, 2)).astype(np.float32)
    return {"image": images, "mask": masks}, {"image": images[::-1].copy(), "labels": labels}


def test_swapped_images_teach_the_agnostic_head_only():
    data = _data()
    swapping = _trainer(1.0)
    labels_only = _trainer(0.0, mask_labels_for_cls=False)
    labels_only.lnet.set_weights(swapping.lnet.get_weights())
    # Evaluation never swaps (checked first: training passes move the norm statistics).
    _, eval_agnostic, _ = swapping.compute_losses(data, training=False)
    _, plain_eval_agnostic, _ = labels_only.compute_losses(data, training=False)
    np.testing.assert_allclose(float(eval_agnostic), float(plain_eval_agnostic), rtol=1e-5)
    # Every mask image is swapped: the class losses are the labelled batch's alone.
    _, agnostic, cls = swapping.compute_losses(data, training=True)
    _, plain_agnostic, plain_cls = labels_only.compute_losses(data, training=True)
    np.testing.assert_allclose(float(cls), float(plain_cls), rtol=1e-5)
    # The agnostic loss is that of the swapped images (step 0's textures).
    swapped, which = swap_batch(tf.constant(data[0]["image"]), tf.constant(data[0]["mask"]),
                                1.0, 0)
    assert which.numpy().all()
    expected = tf.reduce_mean(losses.agnostic_bce_per_image(
        swapping.lnet(swapped, training=True)["agnostic"], data[0]["mask"]))
    np.testing.assert_allclose(float(agnostic), float(expected), rtol=1e-5)
    assert abs(float(agnostic) - float(plain_agnostic)) > 1e-4


def test_texture_swap_trains_under_two_replicas(two_replicas, tmp_path):
    with two_replicas.scope():
        trainer = _trainer(0.5)
        trainer.optimizer.build(trainer.lnet.trainable_variables)
    before = weights(trainer.lnet)
    seen = run_loop(trainer, two_replicas, _data(), 2, tmp_path,
                    {"model": trainer.lnet, "optimizer": trainer.optimizer})
    assert np.isfinite([s["loss"] for s in seen]).all()
    changed = sum(not np.allclose(a, b) for a, b in zip(weights(trainer.lnet), before))
    assert changed > len(before) // 2
