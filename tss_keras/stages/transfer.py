"""The ``transfer`` stage: pseudo-labels for the weak pool from the trained L-Net."""

import dataclasses
import os

from tss_keras.config import DiffusionConfig
from tss_keras.errors import DataError
from tss_keras.stages.base import Stage
from tss_keras.training.distribute import barrier
from tss_keras.transfer.calibration import calibrate
from tss_keras.transfer.label_transfer import load_label_transfer
from tss_keras.transfer.pseudo_labels import generate_pseudo_labels, summarize_pseudo_labels


DIFFUSION_SETTINGS = tuple(f.name for f in dataclasses.fields(DiffusionConfig))


def read_ids(path):
    """Ids listed one per line (an empty list if the file does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _score(value):
    return "n/a" if value is None else f"{value:.3f}"


def calibrate_transfer(context, transfer, held_out):
    """With --calibrate, sets ``transfer.params`` to the values calibration picks on ``held_out``.

    Returns the calibration report, or None when calibration is off or had no
    held-out strong images (a message says so).
    """
    diffusion, training_set = context.config.diffusion, context.training_set
    if not diffusion.calibrate:
        return None
    if not held_out:
        context.say("Calibration skipped: no strong images were held out of L-Net training "
                    "(too few strong images, or the 0 % setting); using the --diffusion_* "
                    "values.")
        return None
    records = [r for r in training_set.records if r.image_id in held_out]
    transfer.params, report = calibrate(transfer, records, training_set.num_classes,
                                        transfer.params)
    configured = report["configured"]["miou_void_as_background"]
    outcome = ("no setting clearly better than the --diffusion_* values, kept"
               if report["win_share"] is None  # the configured values' own row
               else f"chosen over the --diffusion_* values ({_score(configured)}) on "
                    f"{report['win_share']:.0%} of bootstrap resamples")
    context.say(f"Calibration on {report['images']} held-out strong images: "
                f"{report['chosen']} -> mIoU {_score(report['miou_void_as_background'])} "
                f"(void as background), coverage {_score(report['coverage'])}; {outcome}")
    return report


class TransferStage(Stage):
    """Calibrates diffusion on held-out strong images, then labels the weak pool.

    Workers split the weak images between them; calibration runs on every
    worker (it is small and deterministic), so all use the same settings.
    """

    name = "transfer"
    settings = DIFFUSION_SETTINGS

    def upstream(self, config):
        return "lnet"

    def output(self, layout):
        return layout.pseudo_label_summary

    def owned_paths(self, layout):
        return [layout.pseudo_label_dir, layout.pseudo_label_summary]

    def check(self, context, planned):
        if "lnet" not in planned and not os.path.isfile(context.layout.lnet_model):
            raise DataError(f"{context.layout.lnet_model}: no trained L-Net; run the lnet stage "
                            f"first (--stages=lnet,transfer)")

    def run(self, context):
        config, layout, cluster = context.config, context.layout, context.cluster
        training_set = context.training_set
        num_classes = training_set.num_classes
        held_out = set(read_ids(layout.calibration_ids))
        transfer = load_label_transfer(layout, config, training_set, held_out,
                                       verbose=cluster.is_chief)
        summary = {"image_size": transfer.image_size,
                   "diffusion": dataclasses.asdict(transfer.params)}
        report = calibrate_transfer(context, transfer, held_out)
        if report:
            summary.update(diffusion=dataclasses.asdict(transfer.params), calibration=report)
        written, skipped = generate_pseudo_labels(
            transfer, training_set.pools.weak, layout, num_classes, cluster.worker_index,
            cluster.num_workers, verbose=int(cluster.is_chief))
        barrier(context.strategy)
        if cluster.is_chief:
            summary = summarize_pseudo_labels(
                training_set.pools.weak, layout, training_set.class_names, summary,
                written if not cluster.multi_worker else None,
                skipped if not cluster.multi_worker else None)
            context.say(f"Pseudo-labels: {written} written, {skipped} already there, void "
                        f"{summary['void_fraction']:.3f} -> {layout.pseudo_label_dir}")
        return layout.pseudo_label_summary
