"""The ``pnet`` stage: trains the P-Net (TS3, or the fully supervised baseline)."""

import os

import keras

from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
from tss_keras.data.pools import StrongExample
from tss_keras.errors import DataError, UsageError
from tss_keras.files import save_model, write_json
from tss_keras.models.discriminator import build_discriminator
from tss_keras.models.encoder import build_encoder, encoder_of
from tss_keras.models.pnet import build_pnet
from tss_keras.stages.base import Stage, seed_everything
from tss_keras.stages.lnet import ENCODER_SETTINGS, mask_stream_examples, per_replica_batch
from tss_keras.training import adversarial
from tss_keras.training.health import DiscriminatorHealth
from tss_keras.training.loop import TrainingLoop
from tss_keras.training.optimizers import make_optimizer
from tss_keras.training.precision import dtype_policy_scope, with_loss_scaling
from tss_keras.training.summaries import first_images, prediction_image_hook
from tss_keras.training.ts3_model import TS3Model

# Settings of the discriminator and what it drives: no P-Net depends on them without one.
ADVERSARIAL_SETTINGS = ("d_lr", "d_filters", "d_with_image", "d_shuffle_classes",
                        "discriminator", "d_downsample", "d_downsample_by", "lambda_semi",
                        "semi_threshold")
PNET_SETTINGS = ENCODER_SETTINGS + (
    "aspp_filters", "aspp_rates", "mode", "pnet_steps", "pnet_lr", "pnet_init", "weak_weight",
    "weak_ignores_strong", "lambda_adv") + ADVERSARIAL_SETTINGS


def pseudo_label_stream(config, training_set, examples, pseudo_paths, **stream):
    """The weak pool's stream with its pseudo-labels, as the P-Net trains on it.

    With ``--weak_ignores_strong`` the pixels labelled with a strong class are
    void: strong classes learn from their masks in the strong stream only.
    """
    ignored = sorted(training_set.class_split.strong) if config.pnet.weak_ignores_strong else ()
    return weak_dataset(examples, training_set.num_classes, pseudo_label_paths=pseudo_paths,
                        void_pseudo_classes=ignored, **stream)


def _as_strong(records):
    return [StrongExample(r.image_id, r.image_path, r.mask_path, r.labels)
            for r in records if r.mask_path is not None]


class PNetStage(Stage):
    """Trains the P-Net on strong masks and weak pseudo-labels, or on all masks (baseline)."""

    name = "pnet"
    settings = PNET_SETTINGS

    def depends_on(self, config):
        p = config.pnet
        if p.mode == "full":
            return tuple(s for s in self.settings
                         if s not in ADVERSARIAL_SETTINGS + ("lambda_adv", "weak_ignores_strong"))
        if p.lambda_adv == 0:
            return tuple(s for s in self.settings if s not in ADVERSARIAL_SETTINGS)
        return self.settings

    def upstream(self, config):
        return "data" if config.pnet.mode == "full" else "transfer"

    def output(self, layout):
        return layout.pnet_model

    def owned_paths(self, layout):
        return [layout.stage_dir("pnet")]

    def check(self, context, planned):
        config, layout = context.config, context.layout
        if config.pnet.pnet_init == "lnet" and "lnet" not in planned \
                and not os.path.isfile(layout.lnet_model):
            raise DataError(f"{layout.lnet_model}: --pnet_init=lnet needs a trained L-Net")
        if config.pnet.mode == "ts3":
            from tss_keras.data.pools import parse_strong_classes
            from tss_keras.stages.data import planned_class_names

            split = parse_strong_classes(config.data.strong_classes, planned_class_names(config))
            if not split.weak:
                raise UsageError("--strong_classes: every class is strong, so --mode=ts3 has no "
                                 "weak class to transfer to (use --mode=full for the baseline)")
            p = config.pnet
            if not split.strong and p.lambda_adv > 0:
                if not config.data.agnostic_data_dir:
                    raise UsageError("--lambda_adv: with no strong class the discriminator's real "
                                     "maps must come from --agnostic_data_dir (or pass "
                                     "--lambda_adv=0)")
                if p.discriminator != "agnostic":
                    raise UsageError(f"--discriminator: {p.discriminator!r} needs strong-class "
                                     f"masks; with no strong class use --discriminator=agnostic "
                                     f"(or --lambda_adv=0)")

    def _streams(self, context):
        """(first examples, their class count, first labelled?, second examples, pseudo paths)."""
        config, layout = context.config, context.layout
        training_set = context.training_set
        pools = training_set.pools
        if config.pnet.mode == "full":
            strong, weak = list(pools.strong), _as_strong(
                r for r in training_set.records if r.image_id in {e.image_id for e in pools.weak})
            if not strong or not weak:  # one pool empty: both streams draw from every mask
                strong = weak = _as_strong(training_set.records)
            if not strong:
                raise DataError(f"{config.data.data_dir}: --mode=full needs masks; split "
                                f"{config.data.train_split!r} has none")
            return strong, training_set.num_classes, True, weak, None
        paths = [layout.pseudo_label(e.image_id) for e in pools.weak]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise DataError(f"{layout.pseudo_label_dir}: no pseudo-labels for {len(missing)} of "
                            f"{len(paths)} weak images (first: {missing[0]}); run the transfer "
                            f"stage first")
        if pools.strong:
            return list(pools.strong), training_set.num_classes, True, list(pools.weak), paths
        if config.pnet.lambda_adv > 0:  # the 0 % setting: real maps from the agnostic set
            examples, classes, _ = mask_stream_examples(config, training_set)
            return examples, classes, False, list(pools.weak), paths
        return None, None, False, list(pools.weak), paths

    def run(self, context):
        config, layout, strategy = context.config, context.layout, context.strategy
        seed_everything(config.train.seed)
        training_set = context.training_set
        num_classes = training_set.num_classes
        first, first_classes, first_labelled, second, pseudo_paths = self._streams(context)
        data = config.data
        batch = per_replica_batch(data.batch_size, strategy)
        stream = dict(crop_size=data.crop_size, batch_size=batch, min_scale=data.min_scale,
                      max_scale=data.max_scale, seed=config.train.seed)

        def second_stream(shard_index, num_shards):
            if pseudo_paths is None:
                return strong_dataset(second, num_classes, shard_index=shard_index,
                                      num_shards=num_shards, **{**stream, "seed": stream["seed"] + 7})
            return pseudo_label_stream(config, training_set, second, pseudo_paths,
                                       shard_index=shard_index, num_shards=num_shards, **stream)

        def make_stream(shard_index, num_shards):
            if first is None:
                return second_stream(shard_index, num_shards)
            return zip_streams(strong_dataset(first, first_classes, shard_index=shard_index,
                                              num_shards=num_shards, **stream),
                               second_stream(shard_index, num_shards))

        p = config.pnet
        adversarial_step = p.mode == "ts3" and p.lambda_adv > 0 and first is not None
        mixed = config.train.mixed_precision
        with strategy.scope(), dtype_policy_scope(mixed):
            encoder = build_encoder(config.model.backbone, config.model.output_stride,
                                    config.model.weights, sync_bn=config.model.sync_bn)
            pnet = build_pnet(encoder, num_classes, config.model.aspp_filters,
                              config.model.aspp_rates, sync_bn=config.model.sync_bn)
            if p.pnet_init == "lnet":
                lnet = keras.saving.load_model(layout.lnet_model, safe_mode=True)
                encoder_of(pnet).set_weights(encoder_of(lnet).get_weights())
            trackables = {"model": pnet}
            discriminator = d_optimizer = None
            if adversarial_step:
                map_channels, image_channels = adversarial.input_channels(
                    p.discriminator, num_classes, p.d_downsample, p.d_downsample_by)
                discriminator = build_discriminator(map_channels, p.d_filters, p.d_with_image,
                                                    image_channels=image_channels)
                d_optimizer = with_loss_scaling(
                    keras.optimizers.Adam(p.d_lr, beta_1=0.9, beta_2=0.99), mixed)
                d_optimizer.build(discriminator.trainable_variables)
                trackables.update(discriminator=discriminator, d_optimizer=d_optimizer)
            trainer = TS3Model(pnet, discriminator, num_classes, lambda_adv=p.lambda_adv,
                               weak_weight=p.weak_weight, lambda_semi=p.lambda_semi,
                               semi_threshold=p.semi_threshold, d_optimizer=d_optimizer,
                               shuffle_classes=p.d_shuffle_classes, design=p.discriminator,
                               d_downsample=p.d_downsample, d_downsample_by=p.d_downsample_by,
                               first_is_labelled=first_labelled,
                               head_lr_multiplier=config.train.head_lr_multiplier)
            optimizer = with_loss_scaling(make_optimizer(
                config.train.optimizer, p.pnet_lr, p.pnet_steps, config.train.weight_decay),
                mixed)
            trainer.compile(optimizer=optimizer)
            optimizer.build(pnet.trainable_variables)
            trackables["optimizer"] = optimizer
        images_per_step = data.batch_size * (1 if first is None else 2)
        context.say(f"P-Net ({p.mode}{', adversarial: ' + p.discriminator if adversarial_step else ''}): "
                    f"{len(first or [])} + {len(second)} images, {images_per_step} per step, "
                    f"{strategy.num_replicas_in_sync} replica(s)")
        hooks, monitors = [], []
        if context.cluster.is_chief:
            sample_stream = second_stream(0, 1)
            hooks.append(prediction_image_hook(pnet, first_images(sample_stream),
                                               os.path.join(layout.logs("pnet"), "images")))
            if adversarial_step:
                monitors.append(DiscriminatorHealth())
        TrainingLoop(strategy, trainer, make_stream, p.pnet_steps, layout.checkpoints("pnet"),
                     trackables, config.train.checkpoint_every, layout.logs("pnet"),
                     context.cluster, name="pnet", jit_compile=config.train.xla, hooks=hooks,
                     monitors=monitors).run()
        if context.cluster.is_chief:
            write_json(layout.pnet_training, {
                "mode": p.mode, "steps": p.pnet_steps, "images_per_step": images_per_step,
                "images_seen": p.pnet_steps * images_per_step, "adversarial": adversarial_step,
                "discriminator": p.discriminator if adversarial_step else None})
            if discriminator is not None:
                save_model(discriminator, layout.discriminator_model)
            save_model(pnet, layout.pnet_model)
        return layout.pnet_model
