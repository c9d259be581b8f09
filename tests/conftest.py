"""Shared fixtures. Two logical CPU devices are set up before TF starts (design.md §3)."""

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
