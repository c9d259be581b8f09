"""Shared encoder: every backbone at both output strides, and the dilation conversion."""

import keras
import numpy as np
import pytest

from tss_keras.models.encoder import BACKBONES, _SPECS, build_encoder, dilate_backbone


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_stride_for_every_backbone(backbone):
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    for output_stride in (8, 16):
        encoder = build_encoder(backbone, output_stride, weights=None)
        features = encoder(image)
        assert features.shape[1:3] == (64 // output_stride, 96 // output_stride), (
            backbone, output_stride, features.shape)
        assert np.isfinite(features.numpy()).all()


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50", "mobilenetv2"])
def test_dilation_keeps_every_weight(backbone):
    base = _SPECS[backbone][0](include_top=False, weights=None, input_shape=(None, None, 3))
    trunk = keras.Model(base.input, base.get_layer(_SPECS[backbone][2]).output)
    for output_stride in (8, 16):
        dilated = dilate_backbone(base, backbone, output_stride)
        original, converted = trunk.get_weights(), dilated.get_weights()
        assert len(original) == len(converted) > 0
        for a, b in zip(original, converted):
            np.testing.assert_array_equal(a, b)
        features = dilated(np.zeros((1, 64, 64, 3), np.float32))
        assert features.shape[1] == 64 // output_stride
        if output_stride == 8:
            assert max(getattr(l, "dilation_rate", (1, 1))[0] for l in dilated.layers) > 1


def test_weights_file_loads_and_mismatch_names_the_file(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None,
                                            input_shape=(None, None, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    source.save_weights(path)
    encoder = build_encoder("mobilenetv2", 16, weights=path)
    np.testing.assert_array_equal(encoder.get_weights()[0], source.get_weights()[0])
    with pytest.raises(ValueError, match=f"--weights: {path} does not fit backbone resnet50"):
        build_encoder("resnet50", 16, weights=path)
    with pytest.raises(ValueError, match="does not exist"):
        build_encoder("resnet50", 16, weights=str(tmp_path / "missing.h5"))


def test_unknown_backbone_and_stride():
    with pytest.raises(ValueError, match="--backbone: unknown backbone 'alexnet'"):
        build_encoder("alexnet", 16)
    with pytest.raises(ValueError, match="--output_stride: 32 is not supported"):
        build_encoder("resnet50", 32)


def test_encoder_of_finds_the_shared_encoder_for_weight_transfer():
    from tss_keras.models.encoder import encoder_of
    from tss_keras.models.lnet import build_lnet
    from tss_keras.models.pnet import build_pnet

    lnet = build_lnet(build_encoder("tiny", 16), 5)
    pnet = build_pnet(build_encoder("tiny", 16), 5, aspp_filters=8, aspp_rates=(1,))
    assert encoder_of(lnet).name.startswith("tiny_os16")
    encoder_of(pnet).set_weights(encoder_of(lnet).get_weights())
    for a, b in zip(encoder_of(pnet).get_weights(), encoder_of(lnet).get_weights()):
        np.testing.assert_array_equal(a, b)


def _one_error_line(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_offline_imagenet_weights_is_one_line(synth_dir, tmp_path):
    """No network: the download fails at once (a loopback proxy), and the user gets one line."""
    import os
    import subprocess
    import sys

    from conftest import ROOT, run_flags
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT,
               HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               KERAS_HOME=str(tmp_path / "keras_home"))
    result = subprocess.run([sys.executable, "-m", "trainers.run", *run_flags(
        synth_dir, str(tmp_path / "run"), "--backbone=mobilenetv2", "--weights=imagenet",
        "--stages=lnet")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith("error: --weights=imagenet: could not download the mobilenetv2 "
                           "weights") and "--weights=/path/to/mobilenet_v2_weights" in line


def test_weights_of_another_backbone_is_one_clean_line(synth_dir, tmp_path):
    from conftest import run_flags, run_module
    source = keras.applications.MobileNetV2(include_top=False, weights=None,
                                            input_shape=(None, None, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    source.save_weights(path)
    result = run_module("trainers.run", *run_flags(synth_dir, str(tmp_path / "run"),
                                                   "--backbone=resnet50", f"--weights={path}",
                                                   "--stages=lnet"))
    assert result.returncode == 1
    assert _one_error_line(result).startswith(
        f"error: --weights: {path} does not fit backbone resnet50")
