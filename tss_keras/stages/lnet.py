"""The ``lnet`` stage: trains the L-Net and saves ``<model_dir>/lnet/lnet.keras``."""

import os

import numpy as np
from tss_keras.data.class_names import load_class_names
from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
from tss_keras.data.pools import StrongExample, WeakExample
from tss_keras.data.voc import load_split
from tss_keras.errors import DataError, UsageError
from tss_keras.files import save_model, write_json, write_text
from tss_keras.layout import label_png
from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import build_lnet
from tss_keras.stages.base import Stage, seed_everything
from tss_keras.stages.transfer import DIFFUSION_SETTINGS, calibrate_transfer
from tss_keras.training.distribute import barrier
from tss_keras.training.lnet_model import LNetTrainer
from tss_keras.training.loop import TrainingLoop
from tss_keras.training.optimizers import make_optimizer
from tss_keras.training.precision import dtype_policy_scope, with_loss_scaling
from tss_keras.training.summaries import first_images, lnet_image_hook
from tss_keras.transfer.calibration import holdout_ids
from tss_keras.transfer.evaluate import (MISSED_SHARE, fit_position_prior, lnet_health,
                                         missed_classes)
from tss_keras.transfer.label_transfer import LabelTransfer, LNetInput, label_transfer_for
from tss_keras.transfer.pseudo_labels import generate_pseudo_labels

SUMMARY_IMAGES = 200  # eval-split images the L-Net's summary is measured on, at most
# What a trained encoder depends on (the L-Net's and the P-Net's alike).
ENCODER_SETTINGS = ("backbone", "output_stride", "weights", "crop_size", "batch_size",
                    "min_scale", "max_scale", "optimizer", "weight_decay", "head_lr_multiplier",
                    "mixed_precision", "seed")


def per_replica_batch(batch_size, strategy):
    """The batch each replica takes; the global batch must split evenly."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(f"--batch_size: {batch_size} does not split evenly over "
                         f"{replicas} replicas")
    return batch_size // replicas


def canonical_image_size(config, training_set):
    """``--lnet_image_size``, or the median long side of the training images if 0."""
    if config.lnet.lnet_image_size:
        return config.lnet.lnet_image_size
    return int(np.median([max(r.height, r.width) for r in training_set.records]))


def mask_stream_examples(config, training_set):
    """Masked examples for the agnostic head, and the class count of their masks.

    Returns (examples, number of classes in their masks, whether their masks
    use the run's class list, so their labels can train the classifier too).
    """
    data = config.data
    if data.agnostic_data_dir:
        names_file = os.path.join(data.agnostic_data_dir, "class_names.txt")
        names = load_class_names(names_file if os.path.isfile(names_file) else None)
        records, _ = load_split(data.agnostic_data_dir, data.train_split, names,
                                skip_bad=data.skip_bad)
        examples = [r for r in records if r.mask_path is not None]
        if not examples:
            raise DataError(f"{data.agnostic_data_dir}: --agnostic_data_dir has no masks "
                            f"in split {data.train_split!r}")
        return examples, len(names), False
    if not training_set.pools.strong:
        raise DataError("--strong_classes: the strong pool is empty, so the class-agnostic "
                        "head has no masks; pass --agnostic_data_dir (the 0 % setting)")
    return list(training_set.pools.strong), training_set.num_classes, True


def lnet_streams(config, mask_examples, mask_classes, label_examples, num_classes, image_size,
                 batch_size):
    """``make_stream(shard_index, num_shards)``: one L-Net round's (mask, label) batch pairs.

    The classifier sees whole images at the canonical scale (``image_size``
    long side, on a square canvas of that side), the scale label transfer
    reads its CAMs at. The agnostic head sees random ``--crop_size`` crops or,
    with ``--lnet_mask_view=image``, crops of the canvas's size, so that it
    learns objects together with their surround.
    """
    data = config.data
    stream = dict(crop_size=data.crop_size, batch_size=batch_size, min_scale=data.min_scale,
                  max_scale=data.max_scale, seed=config.train.seed, base_size=image_size)
    canvas = dict(stream, crop_size=(image_size, image_size))
    masked = canvas if config.lnet.lnet_mask_view == "image" else stream

    def make_stream(shard_index, num_shards):
        return zip_streams(
            strong_dataset(mask_examples, mask_classes, shard_index=shard_index,
                           num_shards=num_shards, jitter=config.lnet.lnet_color_jitter, **masked),
            weak_dataset(label_examples, num_classes, shard_index=shard_index,
                         num_shards=num_shards, **canvas))
    return make_stream


class LNetStage(Stage):
    """Trains the L-Net: agnostic head on masks, CAM classifier on every image's labels."""

    name = "lnet"
    settings = ENCODER_SETTINGS + ("lnet_steps", "lnet_lr", "lnet_head_channels",
                                   "lnet_cam_pooling", "lnet_image_size", "lnet_cam_pixel_weight",
                                   "lnet_presence_weight", "lnet_rounds", "lnet_color_jitter",
                                   "lnet_mask_view", "lnet_head_rates",
                                   "calibrate", "calibration_images")

    def upstream(self, config):
        return "data"

    def output(self, layout):
        return layout.lnet_model

    def owned_paths(self, layout):
        return [layout.stage_dir("lnet")]

    def depends_on(self, config):
        """Rounds after the first learn from pseudo-labels, so they depend on diffusion too."""
        if config.lnet.lnet_rounds > 1:
            return self.settings + DIFFUSION_SETTINGS
        return self.settings

    def run(self, context):
        config, layout = context.config, context.layout
        training_set = context.training_set
        num_classes = training_set.num_classes
        mask_examples, mask_classes, own_classes = mask_stream_examples(config, training_set)
        held_out = set()
        if config.diffusion.calibrate and own_classes:
            held_out = set(holdout_ids(mask_examples, config.diffusion.calibration_images,
                                       config.train.seed))
            mask_examples = [e for e in mask_examples if e.image_id not in held_out]
        if context.cluster.is_chief:
            write_text(layout.calibration_ids, "".join(f"{i}\n" for i in sorted(held_out)))
        label_examples = [WeakExample(r.image_id, r.image_path, r.labels)
                          for r in training_set.records if r.image_id not in held_out]
        sizes = LNetInput(canonical_image_size(config, training_set))
        lnet = self._train_round(context, 1, mask_examples, mask_classes, own_classes,
                                 label_examples, sizes)
        for number in range(2, config.lnet.lnet_rounds + 1):
            labels_dir = layout.lnet_round_labels(number)
            self._label_weak_pool(context, lnet, sizes, held_out, labels_dir, number)
            # The weak images join the mask stream with the previous round's pseudo-labels
            # (only their foreground teaches the agnostic head). Their classes are a guess,
            # so no mask's labels train the classifier in these rounds (keeping the strong
            # masks' class losses scored worse on `photo`, `shared` and `wide`; README).
            weak_masks = [StrongExample(e.image_id, e.image_path,
                                        label_png(labels_dir, e.image_id), e.labels)
                          for e in training_set.pools.weak]
            lnet = self._train_round(context, number, list(mask_examples) + weak_masks,
                                     max(mask_classes, num_classes), False, label_examples,
                                     sizes)
        if context.cluster.is_chief:
            sizes.write(layout.lnet_input)
            prior = fit_position_prior(mask_examples, mask_classes)
            self._summarize(context, lnet, sizes.image_size, num_classes, prior)
            save_model(lnet, layout.lnet_model)
        return layout.lnet_model

    @staticmethod
    def _train_round(context, number, mask_examples, mask_classes, own_classes, label_examples,
                     sizes):
        """Trains a new L-Net for ``--lnet_steps`` (round ``number``) and returns it.

        ``mask_examples`` teach the agnostic head (and, with ``own_classes``,
        the classifier and the CAMs' per-pixel loss); ``label_examples`` teach
        the classifier from image labels.
        """
        config, layout, strategy = context.config, context.layout, context.strategy
        seed_everything(config.train.seed)
        num_classes = context.training_set.num_classes
        batch = per_replica_batch(config.data.batch_size, strategy)
        make_stream = lnet_streams(config, mask_examples, mask_classes, label_examples,
                                   num_classes, sizes.image_size, batch)
        mixed = config.train.mixed_precision
        with strategy.scope(), dtype_policy_scope(mixed):
            encoder = build_encoder(config.model.backbone, config.model.output_stride,
                                    config.model.weights, sync_bn=config.model.sync_bn)
            lnet = build_lnet(encoder, num_classes, head_channels=config.lnet.lnet_head_channels,
                              sync_bn=config.model.sync_bn,
                              cam_pooling=config.lnet.lnet_cam_pooling,
                              head_rates=config.lnet.lnet_head_rates)
            trainer = LNetTrainer(lnet, num_classes, mask_labels_for_cls=own_classes,
                                  cam_pixel_weight=config.lnet.lnet_cam_pixel_weight,
                                  presence_weight=config.lnet.lnet_presence_weight,
                                  head_lr_multiplier=config.train.head_lr_multiplier)
            optimizer = with_loss_scaling(make_optimizer(
                config.train.optimizer, config.lnet.lnet_lr, config.lnet.lnet_steps,
                config.train.weight_decay), mixed)
            trainer.compile(optimizer=optimizer)
            optimizer.build(lnet.trainable_variables)
        rounds = config.lnet.lnet_rounds
        if number > 1:
            source = "strong masks and the weak pool's pseudo-labels"
        else:
            source = "agnostic set" if config.data.agnostic_data_dir else "strong pool"
        context.say(f"L-Net{f' round {number}/{rounds}' if rounds > 1 else ''}: "
                    f"{len(mask_examples)} masked images ({source}), "
                    f"{len(label_examples)} labelled images, "
                    f"{len(context.training_set.records) - len(label_examples)} held out for "
                    f"calibration, images at long side {sizes.image_size}, "
                    f"{strategy.num_replicas_in_sync} replica(s)")
        hooks = []
        log_dir = layout.lnet_round_logs(number)
        if context.cluster.is_chief:
            sample = first_images(make_stream(0, 1), stream=1)
            hooks.append(lnet_image_hook(lnet, sample, os.path.join(log_dir, "images")))
        name = "lnet" if number == 1 else f"lnet round {number}"
        TrainingLoop(strategy, trainer, make_stream, config.lnet.lnet_steps,
                     layout.lnet_round_checkpoints(number),
                     {"model": lnet, "optimizer": optimizer},
                     config.train.checkpoint_every, log_dir, context.cluster,
                     name=name, jit_compile=config.train.xla, hooks=hooks).run()
        return lnet

    @staticmethod
    def _label_weak_pool(context, lnet, sizes, held_out, labels_dir, number):
        """The weak pool's pseudo-labels from ``lnet``, written to ``labels_dir``.

        Made as the transfer stage makes them (prototypes, calibration when
        asked, the --diffusion_* values); finished files are kept, so a resumed
        run goes on where it stopped.
        """
        config, cluster = context.config, context.cluster
        training_set = context.training_set
        if all(os.path.isfile(label_png(labels_dir, e.image_id))
               for e in training_set.pools.weak):
            return  # a resumed run: the previous round's labels are all there
        transfer = label_transfer_for(lnet, sizes.image_size, config, training_set, held_out,
                                      verbose=cluster.is_chief)
        calibrate_transfer(context, transfer, held_out)
        if cluster.is_chief:
            context.say(f"L-Net round {number - 1}'s pseudo-labels for round {number} -> "
                        f"{labels_dir}")
        generate_pseudo_labels(transfer, training_set.pools.weak, context.layout,
                               training_set.num_classes, cluster.worker_index,
                               cluster.num_workers, verbose=int(cluster.is_chief),
                               out_dir=labels_dir,
                               log_dir=context.layout.lnet_round_logs(number))
        barrier(context.strategy)

    @staticmethod
    def _summarize(context, lnet, image_size, num_classes, prior):
        """Writes and prints how well the L-Net sees the eval split (classifier, agnostic map).

        ``prior``: the PositionPrior of the agnostic head's training masks, the
        trivial baseline its IoU is printed against.
        """
        config, training_set = context.config, context.training_set
        try:
            records, _ = load_split(config.data.data_dir, config.data.eval_split,
                                    training_set.class_names, skip_bad=True)
        except DataError as e:  # no eval split: nothing to measure the L-Net on
            context.say(f"L-Net classifier mAP not measured: {e}")
            records = []
        records = [r for r in records if r.labels][:SUMMARY_IMAGES]
        transfer = LabelTransfer.from_config(lnet, num_classes, config.diffusion, image_size)
        health = lnet_health(transfer, records, num_classes, prior)
        names = training_set.class_names
        write_json(context.layout.lnet_summary, {
            "classifier_map": health["classifier_map"], "chance_map": health["chance_map"],
            "agnostic_iou": health["agnostic_iou"], "prior_iou": health["prior_iou"],
            "agnostic_found": {names[c]: share for c, share in health["found"].items()},
            "split": config.data.eval_split, "images": len(records)})
        if health["classifier_map"] is not None:
            context.say(f"L-Net classifier mAP on {len(records)} {config.data.eval_split} "
                        f"images: {health['classifier_map']:.3f} "
                        f"(random scores: {health['chance_map']:.3f})")
        if health["agnostic_iou"] is not None:
            weak = training_set.class_split.weak
            shares = ", ".join(f"{names[c]}{'*' if c in weak else ''} {share:.2f}"
                               for c, share in health["found"].items())
            context.say(f"L-Net agnostic map: IoU {health['agnostic_iou']:.3f} (where masks "
                        f"usually have foreground, not looking at the image: "
                        f"{health['prior_iou']:.3f}); share of each class's pixels it finds "
                        f"(* weak): {shares}")
            missed = missed_classes(health["found"], weak)
            if missed:
                context.say(f"warning: the agnostic map finds under {MISSED_SHARE:.0%} of the "
                            f"pixels of weak classes {', '.join(names[c] for c in missed)}; "
                            f"their pseudo-labels will be mostly background (README, "
                            f"\"Label transfer\")")
