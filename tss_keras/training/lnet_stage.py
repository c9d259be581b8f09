"""The ``lnet`` stage: trains the L-Net and saves ``<model_dir>/lnet/lnet.keras``."""

import os

from tss_keras.data.class_names import load_class_names
from tss_keras.data.errors import DataError
from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
from tss_keras.data.pools import WeakExample
from tss_keras.data.voc import load_split
from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import build_lnet
from tss_keras.training.common import (fit_with_checkpoints, load_training_data,
                                       make_optimizer, save_model_atomically,
                                       seed_everything)
from tss_keras.training.lnet_model import LNetTrainer
from tss_keras.training.summaries import LNetImages, sample_images


def lnet_path(model_dir):
    return os.path.join(model_dir, "lnet", "lnet.keras")


def _mask_stream_examples(config, pools):
    """Masked examples for the agnostic head, and the class count of their masks."""
    if config.agnostic_data_dir:
        names_file = os.path.join(config.agnostic_data_dir, "class_names.txt")
        names = load_class_names(names_file if os.path.isfile(names_file) else None)
        records, _ = load_split(config.agnostic_data_dir, config.train_split, names,
                                skip_bad=config.skip_bad)
        examples = [r for r in records if r.mask_path is not None]
        if not examples:
            raise DataError(f"{config.agnostic_data_dir}: --agnostic_data_dir has no masks "
                            f"in split {config.train_split!r}")
        return examples, len(names), False
    if not pools.strong:
        raise DataError("--strong_classes: the strong pool is empty, so the class-agnostic "
                        "head has no masks; pass --agnostic_data_dir (the 0 % setting)")
    return list(pools.strong), None, True


def train_lnet(config, strategy):
    """Trains (or resumes) the L-Net; returns the path of the saved model."""
    seed_everything(config.seed)
    class_names, _, records, pools = load_training_data(config)
    num_classes = len(class_names)
    mask_examples, mask_classes, own_classes = _mask_stream_examples(config, pools)
    label_examples = [WeakExample(r.image_id, r.image_path, r.labels) for r in records]
    mask_ds = strong_dataset(mask_examples, mask_classes or num_classes, config.crop_size,
                             config.batch_size, config.min_scale, config.max_scale,
                             seed=config.seed)
    label_ds = weak_dataset(label_examples, num_classes, config.crop_size, config.batch_size,
                            min_scale=config.min_scale, max_scale=config.max_scale,
                            seed=config.seed)
    dataset = zip_streams(mask_ds, label_ds)
    stage_dir = os.path.join(config.model_dir, "lnet")
    with strategy.scope():
        encoder = build_encoder(config.backbone, config.output_stride, config.weights)
        lnet = build_lnet(encoder, num_classes)
        trainer = LNetTrainer(lnet, num_classes, mask_labels_for_cls=own_classes)
        optimizer = make_optimizer(config.optimizer, config.lnet_lr, config.lnet_steps,
                                   config.weight_decay)
        trainer.compile(optimizer=optimizer)
        optimizer.build(lnet.trainable_variables)
    print(f"L-Net: {len(mask_examples)} masked images "
          f"({'agnostic set' if config.agnostic_data_dir else 'strong pool'}), "
          f"{len(label_examples)} labelled images, {strategy.num_replicas_in_sync} replica(s)")
    log_dir = os.path.join(config.model_dir, "logs", "lnet")
    images = LNetImages(lnet, sample_images(label_ds), log_dir + "/images")
    fit_with_checkpoints(trainer, dataset, config.lnet_steps, config.checkpoint_every, stage_dir,
                         log_dir, {"model": lnet, "optimizer": optimizer}, [images])
    return save_model_atomically(lnet, lnet_path(config.model_dir))
