"""TS3Model train_step through the training loop: learning, optimizer isolation, replicas, designs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from loop_helpers import run_loop, weights
from tss_keras.models.discriminator import build_discriminator
from tss_keras.models.encoder import build_encoder
from tss_keras.models.pnet import build_pnet
from tss_keras.training import adversarial
from tss_keras.training.ts3_model import TS3Model

C = 4


def _data(seed=0, n=4, size=32):
    rng = np.random.default_rng(seed)

    def batch(classes):
        images = rng.uniform(60, 100, (n, size, size, 3)).astype(np.float32)
        masks = np.zeros((n, size, size, 1), np.uint8)
        for i in range(n):
            y, x = rng.integers(2, size // 2, 2)
            c = classes[i % len(classes)]
            masks[i, y:y + 12, x:x + 12] = c
            images[i, y:y + 12, x:x + 12] = (60 * c, 255 - 50 * c, 120)
            masks[i, y + 12:y + 13, x:x + 12] = 255
        return images, masks
    s_images, s_masks = batch([1, 2])
    w_images, w_masks = batch([3])
    labels = np.tile([[0.0, 0.0, 1.0]], (n, 1)).astype(np.float32)
    return ({"image": s_images, "mask": s_masks},
            {"image": w_images, "mask": w_masks, "labels": labels})


def _build(p_lr=1e-3, d_lr=1e-3, lambda_semi=0.0, sync_bn=False, optimizer="adam",
           design="onehot", discriminator=True, d_downsample=1, d_downsample_by="average",
           with_image=False):
    pnet = build_pnet(build_encoder("tiny", 8, sync_bn=sync_bn), C, aspp_filters=16,
                      aspp_rates=(1, 2), dropout=0.0, sync_bn=sync_bn)
    d = d_optimizer = None
    if discriminator:
        map_channels, image_channels = adversarial.input_channels(design, C, d_downsample,
                                                                  d_downsample_by)
        d = build_discriminator(map_channels, 8, with_image, image_channels=image_channels)
        d_optimizer = keras.optimizers.Adam(d_lr, beta_1=0.9, beta_2=0.99)
        d_optimizer.build(d.trainable_variables)
    model = TS3Model(pnet, d, C, lambda_adv=0.1, lambda_semi=lambda_semi,
                     d_optimizer=d_optimizer, design=design, d_downsample=d_downsample,
                     d_downsample_by=d_downsample_by)
    opt = (keras.optimizers.SGD(p_lr, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(p_lr))
    model.compile(optimizer=opt)
    model.optimizer.build(pnet.trainable_variables)
    return model


def _trackables(model):
    found = {"model": model.pnet, "optimizer": model.optimizer}
    if model.discriminator is not None:
        found.update(discriminator=model.discriminator, d_optimizer=model.d_optimizer)
    return found


@pytest.mark.parametrize("design", adversarial.DESIGNS)
def test_each_network_changes_only_under_its_own_optimizer(design, two_replicas, tmp_path):
    for p_lr, d_lr in ((0.0, 1e-2), (1e-2, 0.0)):
        with two_replicas.scope():
            model = _build(p_lr, d_lr, lambda_semi=0.1, design=design, d_downsample=2)
        pnet_before, d_before = weights(model.pnet), weights(model.discriminator)
        seen = run_loop(model, two_replicas, _data(), 2, tmp_path / f"{design}{p_lr}",
                        _trackables(model))
        assert {"seg_loss", "adv_loss", "d_loss", "d_acc_real", "d_acc_fake",
                "semi_loss"} <= set(seen[-1])
        pnet_changed = any(not np.array_equal(a, b)
                           for a, b in zip(pnet_before, weights(model.pnet)))
        d_changed = any(not np.array_equal(a, b)
                        for a, b in zip(d_before, weights(model.discriminator)))
        assert pnet_changed == (p_lr > 0) and d_changed == (d_lr > 0), (design, p_lr, d_lr)


def test_folded_discriminator_sees_every_pixel_and_trains_under_two_replicas(two_replicas,
                                                                             tmp_path):
    """--d_downsample_by=fold: maps (permuted first) and image folded into channels."""
    with two_replicas.scope():
        model = _build(1e-2, 1e-2, design="onehot", d_downsample=4, d_downsample_by="fold",
                       with_image=True)
    maps = tf.random.uniform([2, 12, 8, C])
    images = tf.random.uniform([2, 12, 8, 3], 0, 255)
    permutation = tf.constant([0, 2, 3, 1])
    folded_maps, folded_images = model.discriminator_inputs(maps, images, permutation)
    assert folded_maps.shape == (2, 3, 2, C * 16) and folded_images.shape == (2, 3, 2, 48)
    np.testing.assert_allclose(tf.nn.depth_to_space(folded_maps, 4),
                               tf.gather(maps, permutation, axis=-1))
    np.testing.assert_allclose(tf.nn.depth_to_space(folded_images, 4), images)
    pnet_before, d_before = weights(model.pnet), weights(model.discriminator)
    seen = run_loop(model, two_replicas, _data(), 2, tmp_path, _trackables(model))
    assert np.isfinite(seen[-1]["d_loss"]) and np.isfinite(seen[-1]["adv_loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(pnet_before, weights(model.pnet)))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, weights(model.discriminator)))


def test_losses_fall_on_a_tiny_problem(tmp_path):
    model = _build(3e-3, 1e-4)
    seen = run_loop(model, tf.distribute.get_strategy(), _data(), 50, tmp_path,
                    _trackables(model))
    assert seen[-1]["seg_loss"] < 0.6 * seen[0]["seg_loss"]
    assert np.isfinite([s["d_loss"] for s in seen]).all()


def test_real_maps_copy_prediction_at_void():
    mask = np.array([[[[1], [255]]]], np.uint8)
    fake = tf.constant([[[[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]]])
    real = adversarial.onehot_real(mask, fake).numpy()
    np.testing.assert_allclose(real[0, 0, 0], [0, 1, 0, 0])
    np.testing.assert_allclose(real[0, 0, 1], [0.4, 0.3, 0.2, 0.1])


def test_matched_real_maps_have_the_predictions_confidence():
    """Where the prediction is right real == fake; elsewhere only the class moves."""
    mask = np.array([[[[3], [1], [255]]]], np.uint8)
    fake = tf.constant([[[[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]]])
    real = adversarial.matched_real(mask, fake).numpy()[0, 0]
    np.testing.assert_allclose(real[0], [0.1, 0.2, 0.3, 0.4], atol=1e-6)  # right: unchanged
    assert real[1].argmax() == 1 and np.isclose(real[1].max(), 0.4)         # wrong: moved
    np.testing.assert_allclose(real[1].sum(), 1.0, atol=1e-6)
    # the others keep the prediction's proportions (0.1 : 0.3 : 0.4) within 1 - 0.4
    np.testing.assert_allclose(real[1][[0, 2, 3]], np.array([0.1, 0.3, 0.4]) / 0.8 * 0.6,
                               atol=1e-6)
    np.testing.assert_allclose(real[2], [0.7, 0.1, 0.1, 0.1], atol=1e-6)    # void: copied
    fg = adversarial.foreground(fake)
    agnostic = adversarial.agnostic_real(mask, fg).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(agnostic, [0.9, 0.9, 0.3], atol=1e-6)


def test_one_and_two_replicas_give_the_same_step(two_replicas, tmp_path):
    data = _data(seed=5)
    results, initial = [], None
    for i, strategy in enumerate((tf.distribute.get_strategy(), two_replicas)):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = _build(1e-2, 1e-3, sync_bn=True, optimizer="sgd")
            model.shuffle_classes = False  # a random permutation would differ between runs
        if initial is None:
            initial = ([v.numpy() for v in model.pnet.variables],
                       [v.numpy() for v in model.discriminator.variables])
        for variable, value in zip(model.pnet.variables, initial[0]):
            variable.assign(value)
        for variable, value in zip(model.discriminator.variables, initial[1]):
            variable.assign(value)
        seen = run_loop(model, strategy, data, 1, tmp_path / str(i), _trackables(model))
        results.append((seen[0], weights(model.pnet) + weights(model.discriminator)))
    (h1, w1), (h2, w2) = results
    for key in ("loss", "seg_loss", "adv_loss", "d_loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-4, err_msg=key)
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(w1, initial[0] + initial[1]))


class _ChannelSpy(keras.Model):
    """A discriminator that records which channel holds the real maps' mass."""

    def __init__(self, inner, real_count):
        super().__init__()
        self.inner = inner
        self.real_count = real_count
        self.seen = self.add_weight(shape=(C,), initializer="zeros", trainable=False)

    def call(self, maps, training=False):
        self.seen.assign(tf.reduce_sum(maps[:self.real_count], axis=[0, 1, 2]))
        return self.inner(maps, training=training)


def test_discriminator_receives_permuted_foreground_channels(tmp_path):
    """Real maps are all class 1; the channel D sees them in must move between steps."""
    strong, weak = _data()
    strong = dict(strong, mask=np.where(strong["mask"] == 255, 255, np.where(
        strong["mask"] > 0, 1, 0)).astype(np.uint8))
    for shuffle in (True, False):
        model = _build()
        model.discriminator = _ChannelSpy(model.discriminator, len(strong["image"]))
        model.shuffle_classes = shuffle
        positions = set()
        for step in range(12):
            model.train_step((strong, weak))
            seen = model.discriminator.seen.numpy()
            assert seen[0] > 0  # background stays in channel 0
            positions.add(int(np.argmax(seen[1:])) + 1)
        assert (len(positions) > 1) == shuffle, positions
        if not shuffle:
            assert positions == {1}


def test_supervised_step_without_discriminator(tmp_path):
    """--lambda_adv=0 and --mode=full: no discriminator at all, CE on both batches."""
    model = _build(discriminator=False)
    assert model.discriminator is None and not any(
        "discriminator" in v.path for v in model.variables)
    seen = run_loop(model, tf.distribute.get_strategy(), _data(), 3, tmp_path,
                    _trackables(model))
    assert set(seen[-1]) == {"loss", "seg_loss"}


def test_head_learns_faster_with_the_multiplier(tmp_path):
    """Under plain SGD the head's first step is exactly 10x longer; the encoder's is unchanged."""
    from tss_keras.models.encoder import encoder_of
    deltas = []
    for multiplier in (1.0, 10.0):
        keras.utils.set_random_seed(0)
        model = _build(optimizer="sgd", discriminator=False)
        model.head_boost = (multiplier, model.head_boost[1])
        model.optimizer = keras.optimizers.SGD(1e-3)
        model.optimizer.build(model.pnet.trainable_variables)
        encoder_paths = {v.path for v in encoder_of(model.pnet).trainable_variables}
        before = {v.path: v.numpy().copy() for v in model.pnet.trainable_variables}
        model.train_step(_data())
        deltas.append({v.path: np.abs(v.numpy() - before[v.path]).sum()
                       for v in model.pnet.trainable_variables})
    head = [p for p in deltas[0] if p not in encoder_paths and deltas[0][p] > 0]
    encoder = [p for p in deltas[0] if p in encoder_paths and deltas[0][p] > 0]
    assert head and encoder
    for path in head:
        np.testing.assert_allclose(deltas[1][path], 10 * deltas[0][path], rtol=1e-2)
    for path in encoder:
        np.testing.assert_allclose(deltas[1][path], deltas[0][path], rtol=1e-2)
