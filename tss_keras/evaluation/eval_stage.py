"""The ``eval`` stage: scores the P-Net on --eval_split and writes eval/results.json."""

import json
import os

import keras

from tss_keras.data.class_names import load_class_names
from tss_keras.data.errors import DataError
from tss_keras.data.palette import atomic_write
from tss_keras.data.pipeline import eval_dataset
from tss_keras.data.pools import parse_strong_classes
from tss_keras.data.voc import load_split
from tss_keras.evaluation.evaluator import evaluate_confusion
from tss_keras.evaluation.report import add_baseline_ratio, build_results, format_table


def results_path(model_dir):
    return os.path.join(model_dir, "eval", "results.json")


def evaluate_run(config, strategy, model_path):
    """Evaluates the saved model at ``model_path``; returns the results path."""
    if not os.path.isfile(model_path):
        raise DataError(f"{model_path}: no trained P-Net; run the pnet stage first")
    class_names = load_class_names(config.class_names_file)
    class_split = parse_strong_classes(config.strong_classes, class_names)
    records, _ = load_split(config.data_dir, config.eval_split, class_names,
                            skip_bad=config.skip_bad)
    records = [r for r in records if r.mask_path is not None]
    if not records:
        raise DataError(f"{config.data_dir}: --eval_split={config.eval_split} has no masks")
    replicas = strategy.num_replicas_in_sync
    max_size = None
    if replicas > 1:  # batches of differently sized images: pad with void to the largest
        max_size = (max(r.height for r in records), max(r.width for r in records))
    dataset = eval_dataset(records, len(class_names), batch_size=replicas, max_size=max_size)
    with strategy.scope():
        model = keras.saving.load_model(model_path, safe_mode=True)
    confusion = evaluate_confusion(model, dataset, len(class_names), strategy,
                                   flip=config.eval_flip, scales=config.eval_scales,
                                   num_images=len(records))
    results = build_results(confusion, class_names, class_split, len(records))
    results["split"] = config.eval_split
    if config.baseline_results:
        add_baseline_ratio(results, config.baseline_results)
    path = results_path(config.model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps(results, indent=2)))
    print(format_table(results))
    return path
