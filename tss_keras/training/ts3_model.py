"""TS3Model: the P-Net's train_step, supervised or refined adversarially against a discriminator."""

import keras
import tensorflow as tf

from tss_keras.constants import VOID_LABEL
from tss_keras.training import adversarial, losses
from tss_keras.training.precision import apply_gradients, scale_loss


def _bce_map(logits, target):
    """Per-image mean BCE of per-location logits against a constant target."""
    logits = tf.cast(logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                  logits=logits)
    return tf.reduce_mean(bce, axis=[1, 2, 3])


def head_variable_paths(model):
    """Paths of a model's trainable variables outside its encoder (its only sub-model)."""
    from tss_keras.models.encoder import encoder_of

    encoder = {v.path for v in encoder_of(model).trainable_variables}
    return frozenset(v.path for v in model.trainable_variables if v.path not in encoder)


def _takes_image(discriminator):
    """Whether a discriminator model takes [maps, image] (``build_discriminator(with_image=True)``)."""
    try:
        return len(discriminator.inputs) == 2
    except (AttributeError, TypeError):  # a subclassed model has no symbolic inputs
        return False


class TS3Model(keras.Model):
    """Trains the P-Net from a pair of batches per step, with or without a discriminator.

    Each step takes ``(first, second)`` batches of ``image`` and ``mask``:
    ``first`` is the strong pool with ground truth, ``second`` the weak pool
    with L-Net pseudo-labels (TS3) or with its true masks (the fully
    supervised baseline, ``--mode=full``, which so sees the same images per
    step). The P-Net loss is ``CE(first) + weak_weight * CE(second)``, void
    ignored. With ``first_is_labelled=False`` (the 0 % setting), ``first`` is
    the agnostic set: its masks use another class list, so they feed only the
    discriminator's real maps, never the cross-entropy.

    With a discriminator, one batched discriminator pass sees real maps (from
    ``first``'s masks), the P-Net's maps of ``first`` (fake, detached) and of
    ``second`` (fake, with gradient), all downsampled by ``d_downsample``
    (``d_downsample_by``: averaged, or folded into channels; see
    ``adversarial.downsample``). The discriminator learns BCE(real -> 1, fake -> 0) with
    its own optimizer; the P-Net adds ``lambda_adv * BCE(D(second) -> 1)``
    and, with ``lambda_semi`` > 0, a self-training CE on ``second``'s pixels
    where sigmoid(D) > ``semi_threshold``, whose targets are the P-Net's
    argmax restricted to the image's labels. Both networks step from the same
    pass (simultaneous updates): each optimizer differentiates only its own
    loss with respect to its own variables. See ``adversarial`` for the
    designs. Losses are per-image means divided by the replica count, so the
    summed replica gradients equal the global-batch gradient.

    Args:
        pnet: model from ``build_pnet``.
        discriminator: model from ``build_discriminator``, or None (supervised).
        num_classes: K + 1.
        lambda_adv, weak_weight, lambda_semi, semi_threshold: loss weights.
        d_optimizer: the discriminator's optimizer; create and ``build`` it
            inside the strategy scope (Keras builds only ``self.optimizer``).
        shuffle_classes: permute foreground channels before the discriminator.
        design: one of ``adversarial.DESIGNS``.
        d_downsample: the discriminator's input is the maps at 1/this size.
        d_downsample_by: how: ``average`` or ``fold`` (``adversarial.DOWNSAMPLINGS``);
            with ``fold`` the discriminator takes ``d_downsample**2`` times the channels.
        first_is_labelled: whether ``first``'s masks are in the run's classes.
        head_lr_multiplier: the P-Net's layers outside its encoder learn this
            many times faster (gradients scaled; meant for SGD).
    """

    def __init__(self, pnet, discriminator=None, num_classes=21, lambda_adv=0.01, weak_weight=1.0,
                 lambda_semi=0.0, semi_threshold=0.2, d_optimizer=None, shuffle_classes=True,
                 design="onehot", d_downsample=1, first_is_labelled=True, head_lr_multiplier=1.0,
                 d_downsample_by="average", **kwargs):
        super().__init__(**kwargs)
        if design not in adversarial.DESIGNS:
            raise ValueError(f"--discriminator: {design!r} is not one of {adversarial.DESIGNS}")
        if d_downsample_by not in adversarial.DOWNSAMPLINGS:
            raise ValueError(f"--d_downsample_by: {d_downsample_by!r} is not one of "
                             f"{adversarial.DOWNSAMPLINGS}")
        self.pnet = pnet
        self.discriminator = discriminator
        self.num_classes = num_classes
        self.lambda_adv = lambda_adv
        self.weak_weight = weak_weight
        self.lambda_semi = lambda_semi
        self.semi_threshold = semi_threshold
        self.d_optimizer = d_optimizer
        self.shuffle_classes = shuffle_classes and design != "agnostic"
        self.design = design
        self.d_downsample = d_downsample
        self.d_downsample_by = d_downsample_by
        self.first_is_labelled = first_is_labelled
        self.head_boost = (head_lr_multiplier, head_variable_paths(pnet))
        self.with_image = discriminator is not None and _takes_image(discriminator)
        names = ["loss", "seg_loss"]
        if discriminator is not None:
            names += ["adv_loss", "d_loss", "d_acc_real", "d_acc_fake"]
            if lambda_semi > 0:
                names.append("semi_loss")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def call(self, images, training=False):
        return self.pnet(images, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _class_permutation(self):
        """Background stays channel 0; foreground channels in a random order."""
        if not self.shuffle_classes:
            return tf.range(self.num_classes)
        return tf.concat([[0], 1 + tf.random.shuffle(tf.range(self.num_classes - 1))], axis=0)

    def discriminator_inputs(self, maps, images, permutation):
        """What the discriminator is called with: full-size maps permuted, then downsampled
        (and the image, downsampled the same way)."""
        if self.design != "agnostic":
            maps = tf.gather(maps, permutation, axis=-1)
        maps = adversarial.downsample(maps, self.d_downsample, self.d_downsample_by)
        if not self.with_image:
            return maps
        images = adversarial.downsample(tf.cast(images, maps.dtype), self.d_downsample,
                                        self.d_downsample_by)
        return [maps, images]

    def train_step(self, data):
        first, second = data if isinstance(data, (tuple, list)) else (None, data)
        if self.discriminator is None:
            return self._supervised_step(first, second)
        return self._adversarial_step(first, second)

    def _segmentation_loss(self, first, second, logits_first, logits_second):
        weak = tf.reduce_mean(losses.segmentation_ce_per_image(logits_second, second["mask"]))
        if first is None or not self.first_is_labelled:
            return self.weak_weight * weak
        strong = tf.reduce_mean(losses.segmentation_ce_per_image(logits_first, first["mask"]))
        return strong + self.weak_weight * weak

    def _forward(self, first, second):
        """P-Net logits of both batches in one pass: (logits_first or None, logits_second)."""
        if first is None:
            return None, self.pnet(second["image"], training=True)
        n = tf.shape(first["image"])[0]
        logits = self.pnet(tf.concat([first["image"], second["image"]], axis=0), training=True)
        return logits[:n], logits[n:]

    def _supervised_step(self, first, second):
        with tf.GradientTape() as tape:
            logits_first, logits_second = self._forward(first, second)
            seg = self._segmentation_loss(first, second, logits_first, logits_second)
            scaled = scale_loss(self.optimizer, losses.per_replica(seg))
        variables = self.pnet.trainable_variables
        apply_gradients(self.optimizer, tape.gradient(scaled, variables), variables,
                        self.head_boost)
        return self._report(loss=seg, seg_loss=seg)

    def _adversarial_step(self, first, second):
        n = tf.shape(first["image"])[0]
        with tf.GradientTape(persistent=True) as tape:
            logits_first, logits_second = self._forward(first, second)
            seg = self._segmentation_loss(first, second, logits_first, logits_second)
            p_first = tf.nn.softmax(tf.cast(logits_first, tf.float32), axis=-1)
            p_second = tf.nn.softmax(tf.cast(logits_second, tf.float32), axis=-1)
            real, fake_first = adversarial.real_and_fake(self.design, first["mask"], p_first)
            maps = tf.concat([real, fake_first, adversarial.view(self.design, p_second)], axis=0)
            images = tf.concat([first["image"], first["image"], second["image"]], axis=0)
            d_logits = tf.cast(self.discriminator(self.discriminator_inputs(
                maps, images, self._class_permutation()), training=True), tf.float32)
            d_real, d_fake, d_second = d_logits[:n], d_logits[n:], d_logits[2 * n:]
            d_loss = (tf.reduce_mean(_bce_map(d_real, 1.0))
                      + tf.reduce_mean(_bce_map(d_fake, 0.0)))
            adv = tf.reduce_mean(_bce_map(d_second, 1.0))
            total = seg + self.lambda_adv * adv
            semi = None
            if self.lambda_semi > 0:
                semi = tf.reduce_mean(self._self_training(logits_second, p_second, d_second,
                                                          second["labels"]))
                total += self.lambda_semi * semi
            d_scaled = scale_loss(self.d_optimizer, losses.per_replica(d_loss))
            p_scaled = scale_loss(self.optimizer, losses.per_replica(total))
        d_variables = self.discriminator.trainable_variables
        p_variables = self.pnet.trainable_variables
        d_gradients = tape.gradient(d_scaled, d_variables)
        p_gradients = tape.gradient(p_scaled, p_variables)
        del tape
        apply_gradients(self.d_optimizer, d_gradients, d_variables)
        apply_gradients(self.optimizer, p_gradients, p_variables, self.head_boost)
        metrics = dict(loss=total, seg_loss=seg, adv_loss=adv, d_loss=d_loss,
                       d_acc_real=tf.reduce_mean(tf.cast(d_real > 0, tf.float32)),
                       d_acc_fake=tf.reduce_mean(tf.cast(d_fake <= 0, tf.float32)))
        if semi is not None:
            metrics["semi_loss"] = semi
        return self._report(**metrics)

    def _self_training(self, logits, probabilities, d_logits, labels):
        """CE on pixels the discriminator trusts, targets limited to the image's labels."""
        confidence = tf.image.resize(tf.sigmoid(d_logits), tf.shape(logits)[1:3])
        allowed = tf.concat([tf.ones_like(labels[:, :1]), labels], axis=-1)[:, None, None, :]
        target = tf.argmax(tf.where(allowed > 0, probabilities, -1.0), axis=-1,
                           output_type=tf.int32)
        target = tf.where(confidence[..., 0] > self.semi_threshold, target, VOID_LABEL)
        return losses.segmentation_ce_per_image(logits, tf.stop_gradient(target)[..., None])

    def _report(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
