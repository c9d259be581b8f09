"""L-Net model: outputs, serialization, and training under 2 replicas."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import build_lnet
from tss_keras.training.common import make_optimizer
from tss_keras.training.lnet_model import LNetTrainer


def test_lnet_outputs():
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=7)
    out = lnet(np.zeros((2, 64, 48, 3), np.float32))
    assert out["agnostic"].shape == (2, 64, 48, 1)
    assert out["cam"].shape == (2, 8, 6, 6)
    assert out["logits"].shape == (2, 6)
    np.testing.assert_allclose(out["logits"], tf.reduce_mean(out["cam"], [1, 2]), rtol=1e-5)


def test_keras_file_loads_with_safe_mode_in_fresh_process(tmp_path):
    lnet = build_lnet(build_encoder("tiny", 16), num_classes=5)
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


def test_one_step_with_two_replicas(two_replicas):
    strategy = two_replicas
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        lnet = build_lnet(build_encoder("tiny", 8), num_classes=4)
        trainer = LNetTrainer(lnet, 4)
        optimizer = make_optimizer("adam", 1e-3, 10)
        trainer.compile(optimizer=optimizer)
        optimizer.build(lnet.trainable_variables)
    before = [w.copy() for w in lnet.get_weights()]
    data = _batch(np.random.default_rng(0), 4, 4)
    ds = tf.data.Dataset.from_tensors(data).repeat()
    history = trainer.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(optimizer.iterations.numpy()) == 1
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, lnet.get_weights()))
    assert changed > len(before) // 2


def test_losses_fall_on_a_tiny_problem():
    lnet = build_lnet(build_encoder("tiny", 8), num_classes=3)
    trainer = LNetTrainer(lnet, 3)
    trainer.compile(optimizer=make_optimizer("adam", 3e-3, 60, 0.0))
    images = np.zeros((4, 32, 32, 3), np.float32) + 100
    masks = np.zeros((4, 32, 32, 1), np.uint8)
    images[:, 8:24, 8:24] = 220
    masks[:, 8:24, 8:24] = 1
    data = ({"image": images, "mask": masks},
            {"image": images, "labels": np.tile([[1.0, 0.0]], (4, 1)).astype(np.float32)})
    history = trainer.fit(tf.data.Dataset.from_tensors(data).repeat(), steps_per_epoch=30,
                          epochs=2, verbose=0)
    assert history.history["agnostic_loss"][1] < 0.5 * history.history["agnostic_loss"][0] + 0.05
