"""The ``eval`` stage: scores the P-Net on --eval_split and writes eval/results.json."""

import json
import os

import keras
import tensorflow as tf

from tss_keras.data.class_names import load_class_names
from tss_keras.data.pools import parse_strong_classes
from tss_keras.data.voc import load_split
from tss_keras.errors import DataError
from tss_keras.evaluation.evaluator import evaluate_confusion
from tss_keras.evaluation.report import add_baseline_ratio, build_results, format_table, read_baseline
from tss_keras.files import write_json
from tss_keras.stages.base import Stage
from tss_keras.stages.data import planned_class_names


class EvalStage(Stage):
    """Per-class IoU, mIoU (all, strong, weak) and the ratio to a baseline run."""

    name = "eval"
    settings = ("eval_split", "eval_flip", "eval_scales", "baseline_results")

    def upstream(self, config):
        return "pnet"

    def output(self, layout):
        return layout.results

    def owned_paths(self, layout):
        return [os.path.dirname(layout.results)]

    def check(self, context, planned):
        config, layout = context.config, context.layout
        if config.eval.baseline_results:
            read_baseline(config.eval.baseline_results, planned_class_names(config))
        if "pnet" not in planned and not os.path.isfile(layout.pnet_model):
            raise DataError(f"{layout.pnet_model}: no trained P-Net; run the pnet stage first")

    def run(self, context):
        config, layout, cluster = context.config, context.layout, context.cluster
        if not cluster.is_chief:
            return layout.results
        # Under several workers only the chief evaluates, on its own devices.
        strategy = tf.distribute.get_strategy() if cluster.multi_worker else context.strategy
        class_names = load_class_names(config.data.class_names_file)
        class_split = parse_strong_classes(config.data.strong_classes, class_names)
        records, _ = load_split(config.data.data_dir, config.data.eval_split, class_names,
                                skip_bad=config.data.skip_bad)
        records = [r for r in records if r.mask_path is not None]
        if not records:
            raise DataError(f"{config.data.data_dir}: --eval_split={config.data.eval_split} has "
                            f"no masks")
        with strategy.scope():
            model = keras.saving.load_model(layout.pnet_model, safe_mode=True)
        confusion = evaluate_confusion(model, records, len(class_names), strategy,
                                       flip=config.eval.eval_flip, scales=config.eval.eval_scales)
        results = build_results(confusion, class_names, class_split, len(records))
        results["split"] = config.data.eval_split
        if os.path.isfile(layout.pnet_training):
            with open(layout.pnet_training, encoding="utf-8") as f:
                results["training"] = json.load(f)
        if config.eval.baseline_results:
            add_baseline_ratio(results, config.eval.baseline_results)
        write_json(layout.results, results)
        print(format_table(results))
        return layout.results
