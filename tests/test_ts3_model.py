"""TS3Model train_step: learning, optimizer isolation, and 1 vs 2 replica equivalence."""

import keras
import numpy as np
import tensorflow as tf

from tss_keras.models.discriminator import build_discriminator
from tss_keras.models.encoder import build_encoder
from tss_keras.models.pnet import build_pnet
from tss_keras.training.ts3_model import TS3Model, real_probabilities

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


def _build(p_lr=1e-3, d_lr=1e-3, lambda_semi=0.0, sync_bn=False, optimizer="adam"):
    pnet = build_pnet(build_encoder("tiny", 8, sync_bn=sync_bn), C, aspp_filters=16,
                      aspp_rates=(1, 2), dropout=0.0, sync_bn=sync_bn)
    discriminator = build_discriminator(C, 8)
    d_optimizer = keras.optimizers.Adam(d_lr, beta_1=0.9, beta_2=0.99)
    d_optimizer.build(discriminator.trainable_variables)
    model = TS3Model(pnet, discriminator, C, lambda_adv=0.1, lambda_semi=lambda_semi,
                     d_optimizer=d_optimizer)
    opt = keras.optimizers.SGD(p_lr, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(p_lr)
    model.compile(optimizer=opt)
    model.optimizer.build(pnet.trainable_variables)
    return model


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def test_each_network_changes_only_under_its_own_optimizer():
    data = tf.data.Dataset.from_tensors(_data()).repeat()
    for p_lr, d_lr in ((0.0, 1e-2), (1e-2, 0.0)):
        model = _build(p_lr, d_lr, lambda_semi=0.1)
        pnet_before = [v.numpy().copy() for v in model.pnet.trainable_variables]
        d_before = [v.numpy().copy() for v in model.discriminator.trainable_variables]
        history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        assert {"seg_loss", "adv_loss", "d_loss", "d_acc_real", "d_acc_fake",
                "semi_loss"} <= set(history.history)
        pnet_changed = any(not np.array_equal(a, v.numpy())
                           for a, v in zip(pnet_before, model.pnet.trainable_variables))
        d_changed = any(not np.array_equal(a, v.numpy())
                        for a, v in zip(d_before, model.discriminator.trainable_variables))
        assert pnet_changed == (p_lr > 0) and d_changed == (d_lr > 0), (p_lr, d_lr)


def test_losses_fall_on_a_tiny_problem():
    model = _build(3e-3, 1e-4)
    history = model.fit(tf.data.Dataset.from_tensors(_data()).repeat(), steps_per_epoch=25,
                        epochs=2, verbose=0).history
    assert history["seg_loss"][1] < 0.6 * history["seg_loss"][0]
    assert np.isfinite(history["d_loss"]).all()


def test_real_maps_copy_prediction_at_void():
    mask = np.array([[[[1], [255]]]], np.uint8)
    fake = tf.constant([[[[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]]])
    real = real_probabilities(mask, fake, C).numpy()
    np.testing.assert_allclose(real[0, 0, 0], [0, 1, 0, 0])
    np.testing.assert_allclose(real[0, 0, 1], [0.4, 0.3, 0.2, 0.1])


def test_one_and_two_replicas_give_the_same_step(two_replicas):
    data = _data(seed=5)
    results = []
    initial = None
    for strategy in (tf.distribute.get_strategy(), two_replicas):
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
        history = model.fit(tf.data.Dataset.from_tensors(data), epochs=1, verbose=0).history
        results.append((history, _weights(model)))
    (h1, w1), (h2, w2) = results
    for key in ("loss", "seg_loss", "adv_loss", "d_loss"):
        np.testing.assert_allclose(h1[key][0], h2[key][0], rtol=1e-4, err_msg=key)
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(w1, initial[0] + initial[1]))


def test_discriminator_sees_permuted_foreground_channels():
    model = _build()
    permutations = {tuple(model._class_permutation().numpy()) for _ in range(20)}
    assert all(p[0] == 0 and sorted(p) == list(range(C)) for p in permutations)
    assert len(permutations) > 1
    model.shuffle_classes = False
    assert tuple(model._class_permutation().numpy()) == tuple(range(C))
