"""The ``pnet`` stage: trains the P-Net (TS3 or the fully supervised baseline)."""

import os

import keras
import tensorflow as tf

from tss_keras.data.errors import DataError
from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
from tss_keras.data.pools import StrongExample
from tss_keras.errors import UsageError
from tss_keras.models.discriminator import build_discriminator
from tss_keras.models.encoder import build_encoder, encoder_of
from tss_keras.models.pnet import build_pnet
from tss_keras.training.common import (fit_with_checkpoints, load_training_data,
                                       make_optimizer, save_model_atomically, seed_everything)
from tss_keras.training.lnet_stage import lnet_path
from tss_keras.training.ts3_model import TS3Model
from tss_keras.transfer.pseudo_labels import pseudo_label_dir


def pnet_path(model_dir):
    return os.path.join(model_dir, "pnet", "pnet.keras")


def _pseudo_label_paths(model_dir, weak_examples):
    directory = pseudo_label_dir(model_dir)
    paths = [os.path.join(directory, e.image_id + ".png") for e in weak_examples]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{directory}: no pseudo-labels for {len(missing)} of {len(paths)} weak "
                        f"images (first: {missing[0]}); run the transfer stage first")
    return paths


def _datasets(config, class_split, records, pools, num_classes):
    """(dataset, adversarial?) for the mode: zipped strong+weak for TS3, strong only for full."""
    stream = dict(crop_size=config.crop_size, batch_size=config.batch_size,
                  min_scale=config.min_scale, max_scale=config.max_scale, seed=config.seed)
    if config.mode == "full":
        masked = [StrongExample(r.image_id, r.image_path, r.mask_path, r.labels)
                  for r in records if r.mask_path is not None]
        if not masked:
            raise DataError(f"{config.data_dir}: --mode=full needs masks; split "
                            f"{config.train_split!r} has none")
        return strong_dataset(masked, num_classes, **stream), False
    if not class_split.weak:
        raise UsageError("--strong_classes: every class is strong, so --mode=ts3 has no weak "
                         "class to transfer to (use --mode=full for the baseline)")
    weak = weak_dataset(pools.weak, num_classes, pseudo_label_paths=_pseudo_label_paths(
        config.model_dir, pools.weak), **stream)
    if not pools.strong:
        print("No strong masks (0 % setting): the P-Net trains on pseudo-labels, without the "
              "adversarial term (the discriminator has no real examples).")
        return weak, False
    return zip_streams(strong_dataset(pools.strong, num_classes, **stream), weak), True


def _init_from_lnet(config, pnet):
    path = lnet_path(config.model_dir)
    if not os.path.isfile(path):
        raise DataError(f"{path}: --pnet_init=lnet needs a trained L-Net")
    lnet = keras.saving.load_model(path, safe_mode=True)
    encoder_of(pnet).set_weights(encoder_of(lnet).get_weights())


def train_pnet(config, strategy):
    """Trains (or resumes) the P-Net; returns the path of the saved model."""
    seed_everything(config.seed)
    if config.mixed_precision and config.xla and not tf.config.list_logical_devices("GPU"):
        # XLA's CPU backend rejects the float16/float32 mix in the gradients.
        raise UsageError("--xla with --mixed_precision needs a GPU; on CPU use one or the other")
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    class_names, class_split, records, pools = load_training_data(config)
    num_classes = len(class_names)
    dataset, adversarial = _datasets(config, class_split, records, pools, num_classes)
    with strategy.scope():
        encoder = build_encoder(config.backbone, config.output_stride, config.weights,
                                sync_bn=config.sync_bn)
        pnet = build_pnet(encoder, num_classes, config.aspp_filters, config.aspp_rates,
                          sync_bn=config.sync_bn)
        if config.pnet_init == "lnet":
            _init_from_lnet(config, pnet)
        discriminator = d_optimizer = None
        trackables = {"model": pnet}
        if adversarial:
            discriminator = build_discriminator(num_classes, config.d_filters, config.d_with_image)
            d_optimizer = keras.optimizers.Adam(config.d_lr, beta_1=0.9, beta_2=0.99)
            if config.mixed_precision:
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
            # Extra optimizers must be built in scope before fit (design.md §3).
            d_optimizer.build(discriminator.trainable_variables)
            trackables.update(discriminator=discriminator, d_optimizer=d_optimizer)
        trainer = TS3Model(pnet, discriminator, num_classes,
                           mode="ts3" if adversarial else "full", lambda_adv=config.lambda_adv,
                           weak_weight=config.weak_weight, lambda_semi=config.lambda_semi,
                           semi_threshold=config.semi_threshold, d_optimizer=d_optimizer,
                           shuffle_classes=config.d_shuffle_classes)
        optimizer = make_optimizer(config.optimizer, config.pnet_lr, config.pnet_steps,
                                   config.weight_decay)
        trainer.compile(optimizer=optimizer, jit_compile=config.xla)
        trainer.optimizer.build(pnet.trainable_variables)
        trackables["optimizer"] = trainer.optimizer
    print(f"P-Net ({config.mode}{', adversarial' if adversarial else ''}): "
          f"{len(pools.strong)} strong, {len(pools.weak)} weak images, "
          f"{strategy.num_replicas_in_sync} replica(s)")
    stage_dir = os.path.join(config.model_dir, "pnet")
    fit_with_checkpoints(trainer, dataset, config.pnet_steps, config.checkpoint_every, stage_dir,
                         os.path.join(config.model_dir, "logs", "pnet"), trackables)
    if discriminator is not None:
        save_model_atomically(discriminator, os.path.join(stage_dir, "discriminator.keras"))
    return save_model_atomically(pnet, pnet_path(config.model_dir))
