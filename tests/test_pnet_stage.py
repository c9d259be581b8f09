"""The pnet and eval stages through `python -m trainers.run`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_flags, run_module


def _run(synth_dir, model_dir, *extra):
    return run_module("trainers.run", *run_flags(synth_dir, model_dir, *extra))


def test_ts3_and_full_runs_with_results_and_ratio(transferred_copy, synth_dir, tmp_path,
                                                  class_names):
    full_dir = str(tmp_path / "full")
    full = _run(synth_dir, full_dir, "--mode=full", "--stages=data,pnet,eval")
    assert full.returncode == 0, full.stderr[-3000:]
    assert not os.path.exists(os.path.join(full_dir, "pnet", "discriminator.keras"))
    # the baseline has no discriminator, so its settings do not make the baseline stale
    again = _run(synth_dir, full_dir, "--mode=full", "--stages=data,pnet,eval",
                 "--discriminator=matched", "--d_downsample=2")
    assert again.returncode == 0 and "Stage pnet: done already" in again.stdout, \
        again.stderr[-2000:]
    stale = _run(synth_dir, full_dir, "--mode=full", "--stages=data,pnet,eval", "--pnet_lr=0.5")
    assert stale.returncode == 1 and "--pnet_lr:" in stale.stderr
    baseline = os.path.join(full_dir, "eval", "results.json")
    ts3 = _run(synth_dir, transferred_copy, "--stages=pnet,eval", f"--baseline_results={baseline}",
               "--lambda_semi=0.1", "--eval_flip", "--pnet_init=lnet", "--d_with_image",
               "--d_downsample_by=fold")
    assert ts3.returncode == 0, ts3.stderr[-3000:]
    results = json.load(open(os.path.join(transferred_copy, "eval", "results.json")))
    for key in ("miou", "miou_strong", "miou_weak", "pixel_accuracy", "per_class_iou",
                "num_images", "ratio_to_baseline"):
        assert key in results
    assert list(results["per_class_iou"]) == list(class_names)
    assert results["num_images"] == 6
    assert set(results["ratio_to_baseline"]) == {"miou", "miou_strong", "miou_weak"}
    assert "mIoU" in ts3.stdout and "ratio to baseline" in ts3.stdout
    assert os.path.isfile(os.path.join(transferred_copy, "pnet", "discriminator.keras"))
    # the fair baseline saw the same images per step and steps as TS3
    full_results = json.load(open(baseline))
    assert full_results["training"]["images_per_step"] == results["training"]["images_per_step"] == 8
    assert full_results["training"]["steps"] == results["training"]["steps"] == 4
    import keras
    import tss_keras  # noqa: F401
    d = keras.saving.load_model(os.path.join(transferred_copy, "pnet", "discriminator.keras"))
    assert len(d.inputs) == 2  # --d_with_image
    # folded by the default --d_downsample=4: 16 pixels per cell, as channels
    assert [tuple(i.shape)[-1] for i in d.inputs] == [16, 48]  # agnostic map, RGB
    flags_text = open(os.path.join(transferred_copy, "flags.txt")).read()
    assert "--baseline_results=" in flags_text and "--stages=pnet,eval" in flags_text


def test_pnet_init_from_the_lnet_encoder(transferred_copy, synth_dir):
    import keras
    import tss_keras  # noqa: F401
    from tss_keras.models import encoder_of
    result = _run(synth_dir, transferred_copy, "--stages=pnet", "--pnet_init=lnet",
                  "--pnet_steps=1", "--pnet_lr=0", "--lambda_adv=0")
    assert result.returncode == 0, result.stderr[-3000:]
    lnet = keras.saving.load_model(os.path.join(transferred_copy, "lnet", "lnet.keras"))
    pnet = keras.saving.load_model(os.path.join(transferred_copy, "pnet", "pnet.keras"))
    for a, b in zip(encoder_of(lnet).trainable_weights, encoder_of(pnet).trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)  # lr 0: unchanged
    assert not os.path.exists(os.path.join(transferred_copy, "pnet", "discriminator.keras"))
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(transferred_copy, "pnet", "checkpoints")))
    assert not any("discriminator" in name for name in reader.get_variable_to_shape_map())


def test_zero_percent_setting_runs_pnet_and_eval_with_the_agnostic_discriminator(synth_dir,
                                                                                 tmp_path):
    from tss_keras.data import synthetic

    agnostic = str(tmp_path / "agnostic")
    synthetic.generate(agnostic, num_train=12, num_val=2, seed=4, category_set="agnostic")
    model_dir = str(tmp_path / "run")
    base = ["--strong_classes=none", f"--agnostic_data_dir={agnostic}"]
    wrong = _run(synth_dir, model_dir, *base, "--discriminator=onehot",
                 "--stages=data,lnet,transfer,pnet,eval")
    assert wrong.returncode == 1 and "--discriminator: 'onehot' needs strong-class masks" in \
        _error_line(wrong)
    result = _run(synth_dir, model_dir, *base, "--stages=data,lnet,transfer,pnet,eval")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "adversarial: agnostic" in result.stdout
    results = json.load(open(os.path.join(model_dir, "eval", "results.json")))
    assert results["miou_strong"] is None and results["miou_weak"] is not None
    assert results["training"]["discriminator"] == "agnostic"
    assert os.path.isfile(os.path.join(model_dir, "pnet", "discriminator.keras"))


def test_resume_after_killed_pnet_run(transferred_copy, synth_dir):
    args = run_flags(synth_dir, transferred_copy, "--stages=pnet", "--pnet_steps=400")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint_dir = os.path.join(transferred_copy, "pnet", "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and not tf.train.latest_checkpoint(checkpoint_dir):
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    assert latest, "no checkpoint before the kill"
    step = int(latest.rsplit("-", 1)[1])
    result = _run(synth_dir, transferred_copy, "--stages=pnet", f"--pnet_steps={step + 2}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed at step {step}" in result.stdout
    assert os.path.isfile(os.path.join(transferred_copy, "pnet", "pnet.keras"))


def test_nan_stops_training_and_keeps_last_good_checkpoint(transferred_copy, synth_dir):
    result = _run(synth_dir, transferred_copy, "--stages=pnet", "--pnet_steps=50",
                  "--checkpoint_every=1", "--pnet_lr=1e30", "--optimizer=sgd")
    assert result.returncode != 0
    error = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert error and ("became nan" in error[0] or "non-finite" in error[0]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.path.join(transferred_copy, "pnet", "pnet.keras"))
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(transferred_copy, "pnet", "checkpoints")))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if hasattr(value, "dtype") and value.dtype.kind == "f":
            assert (abs(value) < float("inf")).all(), name


def _error_line(result):
    lines = [l for l in result.stderr.strip().splitlines() if l.startswith(("error:", "FATAL"))]
    return lines[-1] if lines else result.stderr[-2000:]


@pytest.mark.parametrize("extra, message", [
    (["--stages=pnet"], "no pseudo-labels for"),
    (["--stages=pnet", "--strong_classes=all"], "--mode=ts3 has no weak class"),
    (["--stages=eval"], "no trained P-Net; run the pnet stage first"),
])
def test_pnet_bad_input(synth_dir, tmp_path, extra, message):
    result = _run(synth_dir, str(tmp_path / "run"), *extra)
    assert result.returncode != 0
    assert message in _error_line(result)
    assert "Traceback" not in result.stderr


def test_baseline_file_errors(transferred_copy, synth_dir, tmp_path):
    missing = str(tmp_path / "nope.json")
    result = _run(synth_dir, transferred_copy, "--stages=pnet,eval",
                  f"--baseline_results={missing}")
    assert result.returncode != 0 and f"{missing}: --baseline_results file not found" in _error_line(result)
    assert "P-Net (" not in result.stdout  # checked before training starts
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"class_names": ["background", "cat"], "miou": 0.5}))
    result = _run(synth_dir, transferred_copy, "--stages=eval", f"--baseline_results={other}")
    assert result.returncode != 0 and "another class list" in _error_line(result)


def test_unknown_flag_in_flag_file(tmp_path):
    flagfile = tmp_path / "bad.flags"
    flagfile.write_text("--data_dir=x\n--model_dir=y\n--learning_rat=0.1\n")
    result = run_module("trainers.run", f"--flagfile={flagfile}")
    assert result.returncode != 0
    assert "learning_rat" in result.stderr
    assert "Traceback" not in result.stderr


def test_xla_step(transferred_copy, synth_dir):
    result = _run(synth_dir, transferred_copy, "--stages=pnet", "--pnet_steps=2", "--xla",
                  "--lambda_semi=0.1")
    assert result.returncode == 0, result.stderr[-3000:]


def test_mixed_precision_step(transferred_copy, synth_dir):
    """--mixed_precision applies to every stage that trains (the L-Net too)."""
    result = _run(synth_dir, transferred_copy, "--stages=lnet,transfer,pnet", "--overwrite",
                  "--lnet_steps=2", "--pnet_steps=2", "--mixed_precision", "--lambda_semi=0.1")
    assert result.returncode == 0, result.stderr[-3000:]
    import keras
    import tss_keras  # noqa: F401

    for name in ("pnet/pnet.keras", "lnet/lnet.keras"):
        model = keras.saving.load_model(os.path.join(transferred_copy, name))
        assert any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers) or \
            any(layer.dtype_policy.name == "mixed_float16"
                for layer in model.layers[1].layers), name
    pnet = keras.saving.load_model(os.path.join(transferred_copy, "pnet", "pnet.keras"))
    assert pnet.layers[-1].dtype_policy.compute_dtype == "float32"


def test_xla_with_mixed_precision_on_cpu_is_a_clear_error(synth_dir, tmp_path):
    result = _run(synth_dir, str(tmp_path / "run"), "--stages=pnet", "--mixed_precision", "--xla")
    assert result.returncode != 0
    assert "--xla with --mixed_precision needs a GPU" in _error_line(result)


@pytest.mark.parametrize("ignore", [True, False])
def test_weak_stream_ignores_strong_class_pseudo_labels(transferred, ignore):
    import dataclasses

    from PIL import Image

    from tss_keras.config import RunConfig
    from tss_keras.data.training_set import load_training_set
    from tss_keras.layout import RunLayout
    from tss_keras.stages.pnet import pseudo_label_stream

    config = RunConfig.read(transferred[0])
    config.pnet = dataclasses.replace(config.pnet, weak_ignores_strong=ignore)
    training_set = load_training_set(config.data, verbose=False)
    weak = list(training_set.pools.weak)
    paths = [RunLayout(transferred[0]).pseudo_label(e.image_id) for e in weak]
    strong = sorted(training_set.class_split.strong)
    written = np.concatenate([np.asarray(Image.open(p)).ravel() for p in paths])
    assert np.isin(written, strong).any()  # transfer labelled strong objects in weak images
    batch = next(iter(pseudo_label_stream(config, training_set, weak, paths, crop_size=(64, 64),
                                          batch_size=len(weak), seed=0, shuffle=False)))
    assert np.isin(batch["mask"].numpy(), strong).any() != ignore
