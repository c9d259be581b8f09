"""L-Net model: outputs, serialization, and training under 2 replicas."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from loop_helpers import run_loop, weights

from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import LSE_SHARPNESS, build_lnet
from tss_keras.training.optimizers import make_optimizer
from tss_keras.training.lnet_model import LNetTrainer


def test_lnet_outputs():
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=7)
    out = lnet(np.zeros((2, 64, 48, 3), np.float32))
    assert out["agnostic"].shape == (2, 64, 48, 1)
    assert out["cam"].shape == (2, 8, 6, 6)
    assert out["logits"].shape == (2, 6)
    np.testing.assert_allclose(out["logits"], tf.reduce_mean(out["cam"], [1, 2]), rtol=1e-5)


def test_lse_pooling_makes_the_logits_the_log_sum_exp_of_the_cams():
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=7, cam_pooling="lse")
    out = lnet(np.random.default_rng(0).uniform(0, 255, (2, 64, 48, 3)).astype(np.float32))
    cam, logits = out["cam"], out["logits"]
    r = LSE_SHARPNESS
    expected = (tf.reduce_logsumexp(r * cam, [1, 2]) - np.log(8 * 6)) / r
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits, tf.reduce_mean(cam, [1, 2]), atol=1e-4)


def test_agnostic_head_with_rates_sees_the_whole_image():
    """--lnet_head_rates: an ASPP head with image pooling answers to pixels far outside the
    plain head's receptive field (and the plain head does not)."""
    image = np.random.default_rng(1).uniform(0, 255, (1, 160, 160, 3)).astype(np.float32)
    far_away = image.copy()
    far_away[:, :24, :24] = 255.0 - far_away[:, :24, :24]
    changes = {}
    for rates in ((), (2, 4)):
        lnet = build_lnet(build_encoder("tiny", 8), num_classes=5, head_rates=rates)
        before, after = (lnet(x)["agnostic"].numpy()[0, -16:, -16:] for x in (image, far_away))
        changes[rates] = np.abs(after - before).max()
    assert changes[()] == 0.0
    assert changes[(2, 4)] > 0.0  # bit-identical unless the far pixels reach it


@pytest.mark.parametrize("head_rates", [(), (1, 2)])
def test_keras_file_loads_with_safe_mode_in_fresh_process(tmp_path, head_rates):
    lnet = build_lnet(build_encoder("tiny", 16), num_classes=5, head_rates=head_rates)
    image = np.random.default_rng(0).uniform(0, 255, (1, 40, 56, 3)).astype(np.float32)
    path = str(tmp_path / "lnet.keras")
    lnet.save(path)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "expected.npy", lnet(image)["agnostic"].numpy())
    script = (
        "import sys, numpy as np, keras, tss_keras\n"
        f"m = keras.saving.load_model({path!r}, safe_mode=True)\n"
        f"out = m(np.load({str(tmp_path / 'image.npy')!r}))['agnostic'].numpy()\n"
        f"np.testing.assert_allclose(out, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-5)\n"
        "print('ok')\n")
    (tmp_path / "check.py").write_text(script)
    result = subprocess.run([sys.executable, str(tmp_path / "check.py")], capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def _batch(rng, n, num_classes, size=48):
    images = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    masks = rng.choice([0, 1, 2, 255], (n, size, size, 1)).astype(np.uint8)
    labels = rng.integers(0, 2, (n, num_classes - 1)).astype(np.float32)
    return {"image": images, "mask": masks}, {"image": images[::-1].copy(), "labels": labels}


def _trainer(strategy, num_classes=4, sync_bn=False, optimizer="adam"):
    with strategy.scope():
        lnet = build_lnet(build_encoder("tiny", 8, sync_bn=sync_bn), num_classes=num_classes,
                          sync_bn=sync_bn)
        trainer = LNetTrainer(lnet, num_classes)
        opt = make_optimizer(optimizer, 1e-2, 10)
        trainer.compile(optimizer=opt)
        opt.build(lnet.trainable_variables)
    return trainer


def test_one_step_with_two_replicas_equals_one_replica(two_replicas, tmp_path):
    data = _batch(np.random.default_rng(0), 4, 4)
    results, initial, initial_trainable = [], None, None
    for i, strategy in enumerate((tf.distribute.get_strategy(), two_replicas)):
        trainer = _trainer(strategy, sync_bn=True, optimizer="sgd")
        if initial is None:
            initial = [v.numpy() for v in trainer.lnet.variables]
            initial_trainable = weights(trainer.lnet)
        for variable, value in zip(trainer.lnet.variables, initial):
            variable.assign(value)
        seen = run_loop(trainer, strategy, data, 1, tmp_path / str(i),
                        {"model": trainer.lnet, "optimizer": trainer.optimizer})
        assert int(trainer.optimizer.iterations.numpy()) == 1
        results.append((seen[0], weights(trainer.lnet)))
    (h1, w1), (h2, w2) = results
    for key in ("loss", "agnostic_loss", "cls_loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-4, err_msg=key)
    changed = sum(not np.allclose(a, b) for a, b in zip(w1, initial_trainable))
    assert changed > len(w1) // 2
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_losses_fall_on_a_tiny_problem(tmp_path):
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=3)
    trainer = LNetTrainer(lnet, 3)
    trainer.compile(optimizer=make_optimizer("adam", 3e-3, 60, 0.0))
    images = np.zeros((4, 32, 32, 3), np.float32) + 100
    masks = np.zeros((4, 32, 32, 1), np.uint8)
    images[:, 8:24, 8:24] = 220
    masks[:, 8:24, 8:24] = 1
    data = ({"image": images, "mask": masks},
            {"image": images, "labels": np.tile([[1.0, 0.0]], (4, 1)).astype(np.float32)})
    seen = run_loop(trainer, tf.distribute.get_strategy(), data, 60, tmp_path,
                    {"model": lnet, "optimizer": trainer.optimizer})
    assert seen[-1]["agnostic_loss"] < 0.5 * seen[0]["agnostic_loss"] + 0.05


def test_presence_loss_asks_the_most_object_like_pixels_of_a_labelled_image_for_foreground():
    from tss_keras.training.losses import presence_bce_per_image

    logits = np.full((3, 20, 20, 1), -4.0, np.float32)
    logits[0, :4, :5] = 4.0  # 20 pixels = the top 5 %: this image says "object here"
    labels = np.array([[1, 0], [0, 1], [0, 0]], np.float32)
    loss = presence_bce_per_image(tf.constant(logits), tf.constant(labels)).numpy()
    np.testing.assert_allclose(loss[0], np.log1p(np.exp(-4.0)), rtol=1e-5)
    np.testing.assert_allclose(loss[1], np.log1p(np.exp(4.0)), rtol=1e-5)
    assert loss[2] == 0.0  # no label: nothing says an object is there
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(presence_bce_per_image(variable, tf.constant(labels)))
    gradient = tape.gradient(total, variable).numpy()
    assert np.count_nonzero(gradient[1]) == 20 and (gradient[1] <= 0).all()
    assert not gradient[2].any()


def test_presence_weight_adds_the_presence_loss_of_the_labelled_batch():
    from tss_keras.training.losses import presence_bce_per_image

    lnet = build_lnet(build_encoder("tiny", 8), num_classes=3)
    data = _batch(np.random.default_rng(1), 2, 3)
    data[1]["labels"][0] = [1.0, 0.0]
    _, plain, _ = LNetTrainer(lnet, 3).compute_losses(data, training=False)
    _, with_presence, _ = LNetTrainer(lnet, 3, presence_weight=0.5).compute_losses(
        data, training=False)
    expected = 0.5 * tf.reduce_mean(presence_bce_per_image(
        lnet(data[1]["image"], training=False)["agnostic"], data[1]["labels"]))
    assert float(expected) > 0
    np.testing.assert_allclose(float(with_presence), float(plain) + float(expected), rtol=1e-5)
