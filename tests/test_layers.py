"""Every custom layer survives a get_config round trip and a .keras save/load, computing the same."""

import numpy as np
import pytest

import keras
from tss_keras.models.layers import ASPP, ConvHead, LogSumExpPooling, Preprocess, ResizeLike


def assert_round_trips(layer, inputs, tmp_path):
    """The shared check (as keras-hub's test case does): config and file round trips.

    ``inputs`` is one array or a list of arrays; the layer is wrapped in a
    functional model for the file round trip.
    """
    expected = keras.ops.convert_to_numpy(layer(inputs))
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    symbolic = ([keras.Input(np.shape(x)[1:]) for x in inputs] if isinstance(inputs, list)
                else keras.Input(np.shape(inputs)[1:]))
    model = keras.Model(symbolic, layer(symbolic))
    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)), expected, atol=1e-5)
    return loaded


RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 16, 20, 3)).astype(np.float32)
FEATURES = RNG.normal(size=(2, 8, 10, 6)).astype(np.float32)


@pytest.mark.parametrize("layer, inputs", [
    (Preprocess("caffe", name="caffe"), IMAGES),
    (Preprocess("tf", name="tf"), IMAGES),
    (Preprocess("torch", name="torch"), IMAGES),
    (ResizeLike(name="resize"), [FEATURES, IMAGES]),
    (ResizeLike(method="nearest", name="resize_nearest"), [FEATURES, IMAGES]),
    (ASPP(8, (1, 2), dropout=0.0, name="aspp"), FEATURES),
    (ConvHead(3, hidden=4, name="head_hidden"), FEATURES),
    (ConvHead(2, hidden=0, use_bias=False, name="head_plain"), FEATURES),
    (LogSumExpPooling(3.0, name="lse"), FEATURES),
])
def test_custom_layer_round_trips(layer, inputs, tmp_path):
    assert_round_trips(layer, inputs, tmp_path)


def test_log_sum_exp_pooling_goes_from_the_mean_to_the_max_with_its_sharpness():
    def pooled(sharpness):
        return keras.ops.convert_to_numpy(LogSumExpPooling(sharpness)(FEATURES))

    exact = np.log(np.mean(np.exp(2.0 * FEATURES), axis=(1, 2))) / 2.0
    np.testing.assert_allclose(pooled(2.0), exact, rtol=1e-5)
    np.testing.assert_allclose(pooled(1e-3), FEATURES.mean(axis=(1, 2)), atol=1e-2)
    np.testing.assert_allclose(pooled(1e3), FEATURES.max(axis=(1, 2)), atol=1e-2)


def test_round_trip_check_notices_a_lost_setting(tmp_path):
    """A layer that forgets a constructor argument in get_config must fail the helper."""
    @keras.saving.register_keras_serializable(package="tss_keras_tests")
    class Forgetful(Preprocess):
        def get_config(self):
            config = super().get_config()
            config["mode"] = "caffe"
            return config

    with pytest.raises(AssertionError):
        assert_round_trips(Forgetful("tf", name="forgetful"), IMAGES, tmp_path)


def test_mixed_precision_applies_to_the_models_built_inside_only():
    from tss_keras.models import build_encoder, build_pnet
    from tss_keras.training.precision import dtype_policy_scope

    before = keras.config.dtype_policy().name
    with dtype_policy_scope(True):
        mixed = build_pnet(build_encoder("tiny", 16), 3, aspp_filters=8, aspp_rates=(1,))
    assert keras.config.dtype_policy().name == before == "float32"
    plain = build_pnet(build_encoder("tiny", 16), 3, aspp_filters=8, aspp_rates=(1,))
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in mixed.layers)
    assert all(layer.dtype_policy.name == "float32" for layer in plain.layers)
    assert mixed.layers[-1].dtype_policy.compute_dtype == "float32"  # float32 logits
