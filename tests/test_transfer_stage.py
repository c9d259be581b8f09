"""The lnet and transfer stages through `python -m trainers.run`: files, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import ROOT, STRONG, run_flags as _flags, run_module


def test_pseudo_label_files(transferred, synth_dir, class_names):
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.voc import load_split

    model_dir, result = transferred
    records, _ = load_split(synth_dir, "train", class_names)
    weak = build_pools(records, parse_strong_classes(STRONG, class_names)).weak
    sizes = {r.image_id: (r.width, r.height) for r in records}
    files = sorted(os.listdir(os.path.join(model_dir, "pseudo_labels")))
    assert files == sorted(e.image_id + ".png" for e in weak)
    for example in weak:
        png = Image.open(os.path.join(model_dir, "pseudo_labels", example.image_id + ".png"))
        assert png.mode == "P" and png.size == sizes[example.image_id]
        assert set(np.unique(np.asarray(png))) <= set(example.labels) | {0, 255}
    summary = json.load(open(os.path.join(model_dir, "pseudo_labels.json")))
    assert summary["num_images"] == len(weak) and summary["written"] == len(weak)
    assert os.path.isfile(os.path.join(model_dir, "flags.txt"))
    assert os.listdir(os.path.join(model_dir, "logs", "lnet"))
    tags = set()
    for root, _, files in os.walk(os.path.join(model_dir, "logs")):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                tags.update(v.tag for v in event.summary.value)
    assert {"lnet/image", "lnet/agnostic", "lnet/top_cam"} <= tags
    assert any(t.startswith("transfer/") for t in tags)
    assert any("loss" in t for t in tags)
    assert "pseudo_labels" in result.stdout


def test_redirected_output_is_plain_lines_and_names_the_tensorboard_folder(transferred):
    model_dir, result = transferred
    assert "\x1b[" not in result.stdout and "\b" not in result.stdout  # no bar control codes
    assert "lnet 4/4 steps - " in result.stdout
    assert f"TensorBoard: tensorboard --logdir {os.path.join(model_dir, 'logs')}" in result.stdout


def test_calibration_holds_out_strong_images_and_reports_its_choice(tmp_path):
    """--calibrate: strong images left out of L-Net training pick the diffusion settings."""
    from tss_keras.data import synthetic
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.voc import load_split

    data_dir, model_dir = str(tmp_path / "voc"), str(tmp_path / "run")
    synthetic.generate(data_dir, num_train=120, num_val=4, seed=5)  # enough strong images
    result = run_module("trainers.run", *_flags(data_dir, model_dir, "--calibrate"))
    assert result.returncode == 0, result.stderr[-3000:]
    class_names = load_class_names(os.path.join(data_dir, "class_names.txt"))
    records, _ = load_split(data_dir, "train", class_names)
    pools = build_pools(records, parse_strong_classes(STRONG, class_names))
    held_out = open(os.path.join(model_dir, "lnet", "calibration_ids.txt")).read().split()
    assert 4 <= len(held_out) <= 0.15 * len(pools.strong)
    assert set(held_out) <= {e.image_id for e in pools.strong}
    summary = json.load(open(os.path.join(model_dir, "pseudo_labels.json")))
    report = summary["calibration"]
    assert report["images"] == len(held_out) and len(report["candidates"]) > 1
    eligible = [row for row in report["candidates"]
                if (row["coverage"] or 0.0) >= 0.85 and row["miou_void_as_background"] is not None]
    assert report["eligible"] == len(eligible)
    configured = report["configured"]
    confident = [row for row in eligible if (row["win_share"] or 0.0) >= 0.9
                 and row["miou_void_as_background"] > configured["miou_void_as_background"]]
    if confident:  # the best candidate clearly better than the configured values
        assert report["miou_void_as_background"] == max(
            row["miou_void_as_background"] for row in confident)
    else:
        assert report["chosen"] == {k: configured[k] for k in report["chosen"]}
    for name, value in report["chosen"].items():  # the labels were made with the choice
        assert summary["diffusion"][name] == value
    assert f"Calibration on {len(held_out)} held-out strong images" in result.stdout


def test_rerun_skips_finished_stages_and_files(transferred_copy, synth_dir):
    model_dir = transferred_copy
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, "--lnet_steps=4",
                                                "--stages=transfer"))
    assert result.returncode == 0
    assert "done already" in result.stdout
    os.remove(os.path.join(model_dir, "pseudo_labels.json"))
    removed = sorted(os.listdir(os.path.join(model_dir, "pseudo_labels")))[0]
    os.remove(os.path.join(model_dir, "pseudo_labels", removed))
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer"))
    summary = json.load(open(os.path.join(model_dir, "pseudo_labels.json")))
    assert summary["written"] == 1 and summary["skipped_existing"] == summary["num_images"] - 1


def test_resume_after_killed_lnet_run(synth_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    args = _flags(synth_dir, model_dir, "--lnet_steps=400", "--checkpoint_every=2",
                  "--stages=lnet")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-m", "trainers.run", *args], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint_dir = os.path.join(model_dir, "lnet", "checkpoints")
    deadline = time.time() + 240
    # The checkpoint's files are written before the state file that names it, so wait for
    # what resuming reads, not for the first .index file.
    while time.time() < deadline:
        if os.path.isdir(checkpoint_dir) and tf.train.latest_checkpoint(checkpoint_dir):
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(model_dir, "lnet", "lnet.keras"))
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    assert latest, "no checkpoint was written before the kill"
    step = int(latest.rsplit("-", 1)[1])
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, f"--lnet_steps={step + 2}",
                                                "--checkpoint_every=2", "--stages=lnet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed at step {step}" in result.stdout
    assert os.path.isfile(os.path.join(model_dir, "lnet", "lnet.keras"))


@pytest.mark.parametrize("extra, message", [
    (["--stages=transfer"], "no trained L-Net; run the lnet stage first"),
    (["--backbone=alexnet", "--stages=lnet"], "--backbone: unknown backbone 'alexnet'"),
    (["--output_stride=32", "--stages=lnet"], "--output_stride: 32 is not supported"),
    (["--weights=/nonexistent/w.h5", "--stages=lnet"], "--weights: file /nonexistent/w.h5 does not exist"),
    (["--strong_classes=disc,zebra"], "--strong_classes: unknown class 'zebra'"),
    (["--strong_classes=all", "--stages=lnet,transfer", "--lnet_steps=1"],
     "the weak pool is empty"),
    (["--strong_classes=none", "--stages=lnet"], "the strong pool is empty"),
    (["--stages=data,fly"], "--stages: unknown stage(s) ['fly']"),
    (["--crop_size=a,b"], "--crop_size: a,b is not H,W"),
])
def test_bad_input_is_a_clear_error(synth_dir, tmp_path, extra, message):
    args = _flags(synth_dir, str(tmp_path / "run"), *extra)
    # later flags win, so the overrides apply
    result = run_module("trainers.run", *args)
    assert result.returncode != 0
    lines = [l for l in result.stderr.strip().splitlines() if l.startswith("error:")]
    assert lines and message in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_zero_percent_setting_with_two_cpu_replicas(synth_dir, tmp_path):
    """No strong class: the agnostic head trains on another class set, on 2 replicas."""
    from tss_keras.data import synthetic

    agnostic = str(tmp_path / "agnostic")
    synthetic.generate(agnostic, num_train=12, num_val=2, seed=4, category_set="agnostic")
    model_dir = str(tmp_path / "run")
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, "--strong_classes=none",
                                                f"--agnostic_data_dir={agnostic}",
                                                "--cpu_replicas=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "agnostic set" in result.stdout and "2 replica(s)" in result.stdout
    summary = json.load(open(os.path.join(model_dir, "pseudo_labels.json")))
    assert summary["num_images"] == 24  # every image is weak when no class is strong


def test_changed_settings_are_refused_then_redone_with_overwrite(transferred_copy, synth_dir):
    model_dir = transferred_copy
    changed = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                                 "--diffusion_radius=3"))
    assert changed.returncode == 1
    line = changed.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --diffusion_radius: stage transfer in ") and "--overwrite" in line
    strong = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=lnet",
                                                "--strong_classes=disc,square"))
    assert strong.returncode == 1 and "--strong_classes: stage lnet" in strong.stderr
    before = os.path.getmtime(os.path.join(model_dir, "pseudo_labels.json"))
    redone = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                                "--diffusion_radius=3", "--overwrite"))
    assert redone.returncode == 0, redone.stderr[-2000:]
    summary = json.load(open(os.path.join(model_dir, "pseudo_labels.json")))
    assert summary["diffusion"]["radius"] == 3 and summary["written"] == summary["num_images"]
    assert os.path.getmtime(os.path.join(model_dir, "pseudo_labels.json")) > before
    again = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                               "--diffusion_radius=3"))
    assert again.returncode == 0 and "done already" in again.stdout


def test_a_stage_made_before_a_flag_existed_counts_as_made_with_the_old_behaviour(
        transferred_copy, synth_dir):
    model_dir = transferred_copy
    path = os.path.join(model_dir, "stages.json")

    def forget(setting):
        recorded = json.load(open(path))
        for settings in recorded.values():
            settings.pop(setting, None)
        with open(path, "w") as f:
            json.dump(recorded, f)

    forget("lnet_head_channels")  # its default, 128, is what the L-Net had before the flag
    default = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer"))
    assert default.returncode == 0 and "done already" in default.stdout, default.stderr[-2000:]
    other = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                               "--lnet_head_channels=64"))
    assert other.returncode == 1
    assert "--lnet_head_channels: stage transfer" in other.stderr and "=128" in other.stderr
    forget("lnet_mask_view")  # before the flag: crops, unlike its default (whole views)
    refused = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer"))
    assert refused.returncode == 1
    assert "--lnet_mask_view: stage" in refused.stderr and "'crop'" in refused.stderr
    kept = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                              "--lnet_mask_view=crop"))
    assert kept.returncode == 0 and "done already" in kept.stdout, kept.stderr[-2000:]
    forget("diffusion_color_model")  # before the flag: no colour model, unlike its default
    changed = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=transfer",
                                                 "--lnet_mask_view=crop"))
    assert changed.returncode == 1
    assert "--diffusion_color_model: stage transfer" in changed.stderr


def test_training_stops_at_exactly_the_requested_step_with_the_requested_head(synth_dir,
                                                                              tmp_path,
                                                                              class_names):
    model_dir = str(tmp_path / "run")
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, "--stages=data,lnet",
                                                "--lnet_steps=5", "--checkpoint_every=2",
                                                "--lnet_head_channels=12",
                                                "--lnet_image_size=0"))
    assert result.returncode == 0, result.stderr[-2000:]
    from tss_keras.data.voc import load_split
    records, _ = load_split(synth_dir, "train", class_names)
    median = int(np.median([max(r.height, r.width) for r in records]))  # 0: the median long side
    assert json.load(open(os.path.join(model_dir, "lnet", "lnet_input.json"))) == {
        "image_size": median}
    assert f"images at long side {median}" in result.stdout
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "lnet", "checkpoints"))
    assert latest.endswith("ckpt-5")
    reader = tf.train.load_checkpoint(latest)
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 5
    assert "lnet 5/5 steps" in result.stdout
    import tss_keras.models  # noqa: F401  (registers the L-Net's layers)

    lnet = keras.saving.load_model(os.path.join(model_dir, "lnet", "lnet.keras"), safe_mode=True)
    hidden = lnet.get_layer("agnostic_head").hidden_layers[0]
    assert hidden.filters == 12


def test_synthetic_data_flag_writes_the_set_once(tmp_path):
    data_dir = str(tmp_path / "voc")
    args = [f"--data_dir={data_dir}", f"--model_dir={tmp_path}/run", "--synthetic_data",
            f"--class_names_file={data_dir}/class_names.txt", "--stages=data",
            "--strong_classes=disc,square,triangle"]
    result = run_module("trainers.run", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Wrote the embedded main data set" in result.stdout
    summary = json.load(open(os.path.join(tmp_path, "run", "data_summary.json")))
    assert summary["num_images"] == 240
    again = run_module("trainers.run", *args, f"--model_dir={tmp_path}/run2")
    assert again.returncode == 0 and "Wrote the embedded" not in again.stdout


def test_demo_flags_plan_every_stage_before_the_embedded_set_exists(tmp_path):
    """The quickstart on a fresh clone: stages are checked before the data stage writes the
    set, so no check may need its class_names.txt yet. A missing baseline file stops the run
    at the last check, after every other one passed, with nothing written."""
    data_dir = tmp_path / "demo_data" / "voc"
    result = run_module("trainers.run", f"--flagfile={os.path.join(ROOT, 'demo.flags')}",
                        f"--data_dir={data_dir}", f"--class_names_file={data_dir}/class_names.txt",
                        f"--model_dir={tmp_path}/demo_run",
                        f"--baseline_results={tmp_path}/missing.json")
    assert result.returncode == 1
    assert "missing.json" in result.stderr and "class_names" not in result.stderr
    assert not data_dir.exists()


def test_lnet_summary_reports_the_classifiers_map_on_the_eval_split(transferred, synth_dir,
                                                                     class_names):
    from tss_keras.config import RunConfig
    from tss_keras.data.training_set import load_training_set
    from tss_keras.data.voc import load_split, read_mask
    from tss_keras.layout import RunLayout
    from tss_keras.stages.transfer import read_ids
    from tss_keras.transfer.evaluate import fit_position_prior, foreground_iou

    model_dir, result = transferred
    val, _ = load_split(synth_dir, "val", class_names)
    labels = np.zeros((len(val), len(class_names) - 1))
    for row, record in zip(labels, val):
        row[[c - 1 for c in record.labels]] = 1
    present = labels.any(axis=0)
    summary = json.load(open(os.path.join(model_dir, "lnet", "summary.json")))
    assert summary["split"] == "val" and summary["images"] == len(val)
    assert abs(summary["chance_map"] - labels[:, present].mean()) < 1e-6
    assert 0.0 < summary["classifier_map"] <= 1.0
    assert (f"L-Net classifier mAP on {len(val)} val images: {summary['classifier_map']:.3f}"
            in result.stdout)
    # what the agnostic map finds: every foreground class in the val masks, by name
    in_masks = set()
    for record in val:
        in_masks |= {class_names[c] for c in np.unique(read_mask(record.mask_path,
                                                                 len(class_names)))
                     if 0 < c < len(class_names)}
    assert set(summary["agnostic_found"]) == in_masks
    assert all(0.0 <= share <= 1.0 for share in summary["agnostic_found"].values())
    assert 0.0 < summary["agnostic_iou"] <= 1.0
    assert f"L-Net agnostic map: IoU {summary['agnostic_iou']:.3f}" in result.stdout
    # next to it, the trivial baseline: the position prior of the masks the head trained on
    config = RunConfig.read(model_dir)
    training_set = load_training_set(config.data, verbose=False)
    held_out = set(read_ids(RunLayout(model_dir).calibration_ids))
    prior = fit_position_prior([e for e in training_set.pools.strong if e.image_id not in held_out],
                               len(class_names))
    counts = np.sum([foreground_iou(prior.predict(mask.shape), mask)
                     for mask in (read_mask(r.mask_path, len(class_names)) for r in val)], axis=0)
    np.testing.assert_allclose(summary["prior_iou"], counts[0] / counts[1])
    assert f"not looking at the image: {summary['prior_iou']:.3f}" in result.stdout


def test_a_second_lnet_round_learns_the_weak_images_foreground_from_the_first(synth_dir,
                                                                             tmp_path):
    from tss_keras.config import RunConfig
    from tss_keras.data.training_set import load_training_set
    from tss_keras.layout import RunLayout

    model_dir = str(tmp_path / "run")
    result = run_module("trainers.run", *_flags(synth_dir, model_dir, "--lnet_rounds=2",
                                                "--cpu_replicas=2", "--stages=data,lnet"))
    assert result.returncode == 0, result.stderr[-3000:]
    layout = RunLayout(model_dir)
    training_set = load_training_set(RunConfig.read(model_dir).data, verbose=False)
    strong, weak = training_set.pools.strong, training_set.pools.weak
    # round 1's pseudo-labels of every weak image, in the VOC label format
    labels_dir = layout.lnet_round_labels(2)
    assert sorted(os.listdir(labels_dir)) == sorted(e.image_id + ".png" for e in weak)
    with Image.open(os.path.join(labels_dir, weak[0].image_id + ".png")) as png:
        assert png.mode == "P" and png.size == Image.open(weak[0].image_path).size
    # round 2 is a new L-Net (2 replicas here) whose masks are the strong and weak pools'
    assert "L-Net round 1/2: " + f"{len(strong)} masked images (strong pool)" in result.stdout
    assert (f"L-Net round 2/2: {len(strong) + len(weak)} masked images (strong masks and the "
            f"weak pool's pseudo-labels)") in result.stdout
    round_two = tf.train.latest_checkpoint(layout.lnet_round_checkpoints(2))
    assert round_two and round_two.endswith("-4")
    from tss_keras.models import build_encoder, build_lnet

    def encoder_kernel(checkpoint_dir):
        lnet = build_lnet(build_encoder("tiny", 16), training_set.num_classes)
        tf.train.Checkpoint(model=lnet).read(
            tf.train.latest_checkpoint(checkpoint_dir)).expect_partial()
        return lnet.weights[0].numpy()

    saved = keras.saving.load_model(layout.lnet_model).weights[0].numpy()
    assert np.array_equal(saved, encoder_kernel(layout.lnet_round_checkpoints(2)))
    assert not np.allclose(saved, encoder_kernel(layout.lnet_round_checkpoints(1)))
    # the lnet stage now depends on the diffusion settings that made those labels
    recorded = json.load(open(layout.stage_settings))["lnet"]
    assert recorded["lnet_rounds"] == 2 and recorded["diffusion_radius"] == 5
