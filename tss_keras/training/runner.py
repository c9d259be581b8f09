"""Runs the stages of a TS3 run in order; finished stages are skipped."""

import dataclasses
import json
import os
import shutil

import keras

from tss_keras.config import STAGES
from tss_keras.data import synthetic
from tss_keras.data.errors import DataError
from tss_keras.data.inspect import inspect_split
from tss_keras.data.class_names import load_class_names
from tss_keras.errors import UsageError
from tss_keras.training.common import load_training_data
from tss_keras.training.distribute import make_strategy
from tss_keras.evaluation.eval_stage import evaluate_run, results_path
from tss_keras.evaluation.report import read_baseline
from tss_keras.training.lnet_stage import lnet_path, train_lnet
from tss_keras.training.pnet_stage import pnet_path, train_pnet


def _data_stage(config):
    if config.synthetic_data:
        for directory, category_set in ((config.data_dir, "main"),
                                        (config.agnostic_data_dir, "agnostic")):
            if directory and synthetic.ensure(directory, category_set, seed=config.seed):
                print(f"Wrote the embedded {category_set} data set to {directory}")
    summary = inspect_split(config.data_dir, config.train_split,
                            load_class_names(config.class_names_file), config.strong_classes,
                            skip_bad=config.skip_bad)
    path = os.path.join(config.model_dir, "data_summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"Data: {summary['num_images']} images, strong pool {summary['strong_pool']}, "
          f"weak pool {summary['weak_pool']} -> {path}")
    return path


def _transfer_stage(config):
    from tss_keras.transfer.pseudo_labels import generate_pseudo_labels, pseudo_label_dir

    path = lnet_path(config.model_dir)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no trained L-Net; run the lnet stage first (--stages=lnet,transfer)")
    class_names, _, _, pools = load_training_data(config)
    lnet = keras.saving.load_model(path, safe_mode=True)
    summary = generate_pseudo_labels(lnet, pools.weak, config.model_dir, class_names,
                                     config.diffusion)
    print(f"Pseudo-labels: {summary['written']} written, {summary['skipped_existing']} "
          f"already there -> {pseudo_label_dir(config.model_dir)}")
    return pseudo_label_dir(config.model_dir)


def export_dir(config):
    return config.export_dir or os.path.join(config.model_dir, "export")


def _export_stage(config):
    from tss_keras.exporting.exporter import export_run

    report = export_run(config.model_dir, export_dir(config), config.model_name,
                        formats=config.export_formats,
                        quantizations=config.tflite_quantization)
    print(f"Exported version {report['version']} -> {report['saved_model']}")
    return report["saved_model"] or report["artifacts_dir"]


def _stage_outputs(config):
    return {
        "data": os.path.join(config.model_dir, "data_summary.json"),
        "lnet": lnet_path(config.model_dir),
        "transfer": os.path.join(config.model_dir, "pseudo_labels.json"),
        "pnet": pnet_path(config.model_dir),
        "eval": results_path(config.model_dir),
        "export": None,  # every run of the stage writes a new version
    }


def _clear(config, stage):
    if stage == "lnet":
        shutil.rmtree(os.path.join(config.model_dir, "lnet"), ignore_errors=True)
    elif stage == "transfer":
        shutil.rmtree(os.path.join(config.model_dir, "pseudo_labels"), ignore_errors=True)
    elif stage == "pnet":
        shutil.rmtree(os.path.join(config.model_dir, "pnet"), ignore_errors=True)
    output = _stage_outputs(config).get(stage)
    if output and os.path.isfile(output):
        os.remove(output)


def run_stages(config, strategy=None):
    """Runs ``config.stages`` in pipeline order and returns {stage: output path}.

    A stage whose output exists is skipped unless ``config.overwrite``; an
    interrupted stage resumes from its last checkpoint.
    """
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise UsageError(f"--stages: unknown stage(s) {unknown} (choose from {', '.join(STAGES)})")
    runners = {
        "data": lambda: _data_stage(config),
        "lnet": lambda: train_lnet(config, strategy),
        "transfer": lambda: _transfer_stage(config),
        "pnet": lambda: train_pnet(config, strategy),
        "eval": lambda: evaluate_run(config, strategy, pnet_path(config.model_dir)),
        "export": lambda: _export_stage(config),
    }
    missing = [s for s in config.stages if s not in runners]
    if missing:
        raise UsageError(f"--stages: {missing} not available in this version "
                         f"(available: {', '.join(runners)})")
    if config.baseline_results and "eval" in config.stages:
        # Fail now, not after training.
        read_baseline(config.baseline_results, load_class_names(config.class_names_file))
    os.makedirs(config.model_dir, exist_ok=True)
    with open(os.path.join(config.model_dir, "run_config.json"), "w") as f:
        saved = dataclasses.asdict(config)
        for key in ("data_dir", "model_dir", "class_names_file", "agnostic_data_dir"):
            if saved[key]:  # absolute, so export works from any directory
                saved[key] = os.path.abspath(saved[key])
        json.dump(saved, f, indent=2)
    if strategy is None:
        strategy = make_strategy(config.strategy, config.num_gpus, config.cpu_replicas)
    outputs = {}
    for stage in STAGES:
        if stage not in config.stages:
            continue
        output = _stage_outputs(config)[stage]
        if config.overwrite:
            _clear(config, stage)
        elif output and os.path.isfile(output):
            print(f"Stage {stage}: done already ({output}); --overwrite to redo")
            outputs[stage] = output
            continue
        print(f"== Stage {stage}")
        outputs[stage] = runners[stage]()
    return outputs
