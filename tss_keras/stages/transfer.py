"""The ``transfer`` stage: pseudo-labels for the weak pool from the trained L-Net."""

import dataclasses

import keras

from tss_keras.errors import DataError
from tss_keras.stages.base import Stage
from tss_keras.training.distribute import barrier
from tss_keras.transfer.label_transfer import LabelTransfer
from tss_keras.transfer.pseudo_labels import generate_pseudo_labels, summarize_pseudo_labels
from tss_keras.config import DiffusionConfig


class TransferStage(Stage):
    """L-Net + self-diffusion over the weak pool; workers split the images between them."""

    name = "transfer"
    settings = tuple(f.name for f in dataclasses.fields(DiffusionConfig))

    def upstream(self, config):
        return "lnet"

    def output(self, layout):
        return layout.pseudo_label_summary

    def owned_paths(self, layout):
        return [layout.pseudo_label_dir, layout.pseudo_label_summary]

    def check(self, context, planned):
        import os
        if "lnet" not in planned and not os.path.isfile(context.layout.lnet_model):
            raise DataError(f"{context.layout.lnet_model}: no trained L-Net; run the lnet stage "
                            f"first (--stages=lnet,transfer)")

    def run(self, context):
        config, layout, cluster = context.config, context.layout, context.cluster
        training_set = context.training_set
        lnet = keras.saving.load_model(layout.lnet_model, safe_mode=True)
        transfer = LabelTransfer(lnet, training_set.num_classes, config.diffusion)
        written, skipped = generate_pseudo_labels(
            transfer, training_set.pools.weak, layout, training_set.num_classes,
            cluster.worker_index, cluster.num_workers, verbose=int(cluster.is_chief))
        barrier(context.strategy)
        if cluster.is_chief:
            summarize_pseudo_labels(training_set.pools.weak, layout, training_set.class_names,
                                    {"diffusion": dataclasses.asdict(config.diffusion)},
                                    written if not cluster.multi_worker else None,
                                    skipped if not cluster.multi_worker else None)
            context.say(f"Pseudo-labels: {written} written, {skipped} already there -> "
                        f"{layout.pseudo_label_dir}")
        return layout.pseudo_label_summary
