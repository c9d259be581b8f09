"""Several worker processes on 127.0.0.1: the launcher, step equivalence, faults, TF_CONFIG, loss scale."""

import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import mw_steps
from conftest import ROOT, run_flags
from loop_helpers import run_loop

TESTS = os.path.dirname(os.path.abspath(__file__))
WORKER_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=f"{ROOT}:{TESTS}",
                  GCE_METADATA_IP="127.0.0.1:9")


def _launch(*args, background=False):
    command = [sys.executable, "-m", "trainers.launch", "--workers=2", "--", *args]
    if background:
        return subprocess.Popen(command, cwd=ROOT, env=WORKER_ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=ROOT, env=WORKER_ENV, capture_output=True, text=True,
                          timeout=900)


def _workers(launcher_pid):
    """PIDs of the launcher's worker processes."""
    out = subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _wait_for_checkpoint(directory, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if tf.train.latest_checkpoint(directory):
            return tf.train.latest_checkpoint(directory)
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint in {directory} after {timeout} s")


def test_launcher_runs_every_stage_on_two_workers(synth_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    result = _launch(*run_flags(synth_dir, model_dir, "--stages=data,lnet,transfer,pnet,eval"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "[w0] lnet: weights identical on all 2 workers" in out
    assert "[w0] pnet: weights identical on all 2 workers" in out
    assert "2 replica(s)" in out and "[w1] worker 1 of 2 joined" in out
    assert os.path.isfile(os.path.join(model_dir, "eval", "results.json"))
    summary = os.path.join(model_dir, "pseudo_labels.json")
    import json
    assert json.load(open(summary))["num_images"] == len(os.listdir(
        os.path.join(model_dir, "pseudo_labels")))
    assert not [n for n in os.listdir(os.path.join(model_dir, "lnet")) if n.startswith(".worker")]


def test_steps_match_mirrored_strategy(two_replicas, tmp_path):
    """L-Net and P-Net steps on 2 worker processes equal MirroredStrategy over 2 devices."""
    lnet_trainer, ts3 = mw_steps.build(two_replicas)
    initial = tmp_path / "initial.npz"
    variables = [v for m in (lnet_trainer.lnet, ts3.pnet, ts3.discriminator) for v in m.variables]
    np.savez(initial, **{f"v{i}": v.numpy() for i, v in enumerate(variables)})
    mirrored = mw_steps.train_steps(two_replicas, None, str(initial), str(tmp_path / "ckpt"))

    from tss_keras.launcher import launch_workers
    code = launch_workers(2, [str(tmp_path)], module="mw_steps", env={
        "PYTHONPATH": f"{ROOT}:{TESTS}", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert code == 0
    workers = [np.load(tmp_path / f"worker{i}.npz") for i in (0, 1)]
    for name in ("lnet_losses", "pnet_losses"):
        assert len(mirrored[name]) == mw_steps.STEPS
        np.testing.assert_allclose(workers[0][name], mirrored[name], rtol=1e-5, err_msg=name)
    keys = [k for k in mirrored if "_w" in k]
    assert len(keys) > 20
    for key in keys:
        np.testing.assert_allclose(workers[0][key], mirrored[key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)
        np.testing.assert_array_equal(workers[0][key], workers[1][key])


def test_killed_worker_then_relaunch_resumes(synth_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    flags = run_flags(synth_dir, model_dir, "--stages=data,lnet", "--checkpoint_every=2")
    process = _launch(*flags, "--lnet_steps=400", background=True)
    latest = _wait_for_checkpoint(os.path.join(model_dir, "lnet", "checkpoints"), process)
    os.kill(_workers(process.pid)[1], signal.SIGKILL)
    out = process.communicate(timeout=120)[0]
    assert process.returncode != 0, out[-2000:]
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "lnet", "checkpoints"))
    step = int(latest.rsplit("-", 1)[1])
    assert step > 0
    result = _launch(*flags, f"--lnet_steps={step + 4}")
    assert result.returncode == 0, result.stdout[-3000:]
    resumed = re.search(r"\[w0\] lnet: resumed at step (\d+)", result.stdout)
    assert resumed and int(resumed.group(1)) >= step
    assert "[w0] lnet: weights identical on all 2 workers" in result.stdout


def test_sigterm_saves_at_an_agreed_step_and_exits_42(synth_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    flags = run_flags(synth_dir, model_dir, "--stages=data,lnet", "--checkpoint_every=5",
                      "--lnet_steps=2000")
    process = _launch(*flags, background=True)
    checkpoints = os.path.join(model_dir, "lnet", "checkpoints")
    _wait_for_checkpoint(checkpoints, process)
    os.kill(_workers(process.pid)[1], signal.SIGTERM)  # one worker is told to stop
    out = process.communicate(timeout=180)[0]
    assert process.returncode == 42, out[-3000:]
    assert "[w0] preempted:" in out and "[w1] preempted:" in out
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(checkpoints))
    saved_step = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert saved_step >= 5
    result = _launch(*flags, f"--lnet_steps={saved_step + 2}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"[w0] lnet: resumed at step {saved_step}" in result.stdout


@pytest.mark.parametrize("value, message", [
    (None, "TF_CONFIG: --strategy=multi_worker needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG: not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:5000"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG: task index 3 is not in 0..0"),
    ('{"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG: addresses must be 'host:port'"),
])
def test_bad_tf_config_is_one_line(synth_dir, tmp_path, value, message):
    env = {k: v for k, v in WORKER_ENV.items() if k != "TF_CONFIG"}
    if value is not None:
        env["TF_CONFIG"] = value
    result = subprocess.run([sys.executable, "-m", "trainers.run", "--strategy=multi_worker",
                             *run_flags(synth_dir, str(tmp_path / "run"))], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr[-2000:]


class _Overflow(keras.Model):
    """One float16 dense layer; a big input overflows its squared output to inf."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4, dtype="mixed_float16")

    def train_step(self, data):
        from tss_keras.training.precision import apply_gradients, scale_loss
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(tf.square(self.dense(data)), tf.float32))
            scaled = scale_loss(self.optimizer, loss / 2.0)
        apply_gradients(self.optimizer, tape.gradient(scaled, self.trainable_variables),
                        self.trainable_variables)
        return {"x": tf.reduce_mean(data)}


def test_loss_scale_overflow_on_replica_1_is_skipped_on_every_replica(two_replicas, tmp_path):
    with two_replicas.scope():
        model = _Overflow()
        model.dense(np.zeros((1, 8), np.float32))  # creates the weights
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-3))
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
    before = [v.numpy().copy() for v in model.trainable_variables]
    scale = float(optimizer.dynamic_scale.numpy())
    batch = np.ones((2, 8), np.float32)
    batch[1] = 1e4  # replica 1's half overflows in float16; replica 0's is fine
    run_loop(model, two_replicas, batch, 1, tmp_path,
             {"model": model, "optimizer": optimizer})
    for variable, value in zip(model.trainable_variables, before):
        for replica_value in two_replicas.experimental_local_results(variable):
            assert np.isfinite(replica_value.numpy()).all()
            np.testing.assert_array_equal(replica_value.numpy(), value)  # the step was skipped
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
