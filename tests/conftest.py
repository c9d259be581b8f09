"""Shared fixtures. Two logical CPU devices are set up before TF starts."""

import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

from tss_keras.data import synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRONG = "disc,square,triangle"


@pytest.fixture(scope="session")
def two_replicas():
    """One MirroredStrategy over the two logical CPUs, shared by all tests.

    Separate strategy objects in one process reuse collective instance keys,
    and synchronised batch norm then mixes up their all-reduces.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small embedded set (read-only for tests: copy it before changing files)."""
    out = str(tmp_path_factory.mktemp("synth"))
    synthetic.generate(out, num_train=24, num_val=6, seed=3)
    return out


@pytest.fixture
def synth_copy(synth_dir, tmp_path):
    """A private copy of the small set that a test may damage."""
    target = str(tmp_path / "voc")
    shutil.copytree(synth_dir, target)
    return target


@pytest.fixture(scope="session")
def class_names(synth_dir):
    from tss_keras.data.class_names import load_class_names
    return load_class_names(os.path.join(synth_dir, "class_names.txt"))


def run_module(module, *args, timeout=600):
    """Runs ``python -m module args`` in a fresh process from the repository root."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_flags(data_dir, model_dir, *extra):
    """Flags of a small, fast trainers.run job on the embedded set (later flags win)."""
    return [f"--data_dir={data_dir}", f"--model_dir={model_dir}",
            f"--class_names_file={data_dir}/class_names.txt", f"--strong_classes={STRONG}",
            "--backbone=tiny", "--output_stride=16", "--crop_size=48", "--batch_size=4",
            "--optimizer=adam", "--diffusion_iterations=3", "--aspp_filters=16",
            "--aspp_rates=1,2", "--d_filters=8", "--lnet_steps=4", "--pnet_steps=4",
            "--checkpoint_every=2", "--lnet_image_size=64", "--stages=data,lnet,transfer",
            *extra]


@pytest.fixture(scope="session")
def transferred(synth_dir, tmp_path_factory):
    """A model_dir after the data, lnet and transfer stages (read-only for tests)."""
    model_dir = str(tmp_path_factory.mktemp("run"))
    result = run_module("trainers.run", *run_flags(synth_dir, model_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.fixture
def transferred_copy(transferred, tmp_path):
    """A private copy of the transferred run that a test may extend or damage."""
    target = str(tmp_path / "run")
    shutil.copytree(transferred[0], target)
    return target
