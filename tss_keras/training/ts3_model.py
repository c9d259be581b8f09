"""TS3Model: the P-Net's adversarial train_step (design.md §1, §3)."""

import keras
import tensorflow as tf

from tss_keras.training import losses

MODES = ("ts3", "full")


def _replica_scale(loss):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype)


def _scale_loss(optimizer, loss):
    """Loss scaling for mixed precision (a no-op for plain optimizers)."""
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


def real_probabilities(mask, fake, num_classes):
    """One-hot ground truth [B, H, W, C]; void pixels copy the (detached) prediction.

    *(choice)* A void pixel carries no label. Filling it with zeros would let
    the discriminator tell real from fake by the zeros alone, so it takes the
    P-Net's own probabilities there, which tell it nothing.
    """
    mask = tf.cast(mask[..., 0], tf.int32)
    one_hot = tf.one_hot(mask, num_classes, dtype=fake.dtype)
    return tf.where((mask == losses.VOID)[..., None], tf.stop_gradient(fake), one_hot)


def _bce_map(logits, target):
    """Per-image mean BCE of per-location logits against a constant target."""
    logits = tf.cast(logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                  logits=logits)
    return tf.reduce_mean(bce, axis=[1, 2, 3])


class TS3Model(keras.Model):
    """Trains the P-Net on strong masks and weak pseudo-labels, refined adversarially.

    Each step takes ``(strong_batch, weak_batch)``: ``strong_batch`` has
    ``image`` and ``mask`` (ground truth), ``weak_batch`` has ``image``,
    ``mask`` (L-Net pseudo-labels, 255 void) and ``labels`` (multi-hot image
    labels). In ``full`` mode there is no weak batch and no discriminator:
    the step is plain supervised training (the baseline).

    A ``ts3`` step: (1) one P-Net forward over strong and weak images;
    (2) the discriminator learns one-hot ground truth (real) against P-Net
    softmax of both batches (fake), with its own optimizer; (3) the P-Net
    learns CE(strong) + ``weak_weight`` x CE(weak, pseudo-labels) +
    ``lambda_adv`` x BCE(D(p_weak), real), plus, with ``lambda_semi`` > 0, a
    self-training CE on weak pixels where sigmoid(D) > ``semi_threshold``,
    whose targets are the P-Net's argmax restricted to the image's labels.
    Losses are per-image means divided by the replica count, so summed
    replica gradients equal the global-batch gradient.

    *(choice)* With ``shuffle_classes`` (the default) the foreground channels
    of every map the discriminator sees are permuted by one random
    permutation per step. Real maps come from strong images only, so without
    it the discriminator learns "a weak class's channel is active, so it is
    fake" and its gradient erases the weak classes; permuted, it can judge
    only the structure of a mask, not which class it shows.

    Args:
        pnet: model from ``build_pnet``.
        discriminator: model from ``build_discriminator`` (None in full mode).
        num_classes: K + 1.
        mode: ``ts3`` or ``full``.
        lambda_adv, weak_weight, lambda_semi, semi_threshold: loss weights.
        d_optimizer: the discriminator's optimizer; create and ``build`` it
            inside the strategy scope (design.md §3).
        shuffle_classes: permute foreground channels before the discriminator.
    """

    def __init__(self, pnet, discriminator=None, num_classes=21, mode="ts3", lambda_adv=0.01,
                 weak_weight=1.0, lambda_semi=0.0, semi_threshold=0.2, d_optimizer=None,
                 shuffle_classes=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"--mode: {mode!r} is not one of {MODES}")
        self.pnet = pnet
        self.discriminator = discriminator
        self.num_classes = num_classes
        self.mode = mode
        self.lambda_adv = lambda_adv
        self.weak_weight = weak_weight
        self.lambda_semi = lambda_semi
        self.semi_threshold = semi_threshold
        self.d_optimizer = d_optimizer
        self.shuffle_classes = shuffle_classes
        self.adversarial = mode == "ts3" and discriminator is not None
        self.with_image = self.adversarial and len(discriminator.inputs) == 2
        names = ["loss", "seg_loss"]
        if self.adversarial:
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

    def _d(self, probabilities, images, permutation, training=True):
        probabilities = tf.gather(probabilities, permutation, axis=-1)
        inputs = [probabilities, images] if self.with_image else probabilities
        return self.discriminator(inputs, training=training)

    def train_step(self, data):
        strong, weak = data if isinstance(data, (tuple, list)) else (data, None)
        if weak is None or self.mode == "full":
            return self._supervised_step(strong)
        return self._adversarial_step(strong, weak)

    def _supervised_step(self, strong):
        with tf.GradientTape() as tape:
            logits = self.pnet(strong["image"], training=True)
            seg = tf.reduce_mean(losses.segmentation_ce_per_image(logits, strong["mask"]))
            scaled = _scale_loss(self.optimizer, _replica_scale(seg))
        variables = self.pnet.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._report(loss=seg, seg_loss=seg)

    def _adversarial_step(self, strong, weak):
        n = tf.shape(strong["image"])[0]
        images = tf.concat([strong["image"], weak["image"]], axis=0)
        with tf.GradientTape() as p_tape:
            logits = self.pnet(images, training=True)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            seg = tf.reduce_mean(losses.segmentation_ce_per_image(logits[:n], strong["mask"]))
            weak_seg = tf.reduce_mean(losses.segmentation_ce_per_image(logits[n:], weak["mask"]))

        # Discriminator: real one-hot ground truth vs detached P-Net softmax.
        fake = tf.stop_gradient(probabilities)
        real = real_probabilities(strong["mask"], fake[:n], self.num_classes)
        permutation = self._class_permutation()
        with tf.GradientTape() as d_tape:
            d_real = self._d(real, strong["image"], permutation)
            d_fake = self._d(fake, images, permutation)
            d_loss = tf.reduce_mean(_bce_map(d_real, 1.0)) + tf.reduce_mean(_bce_map(d_fake, 0.0))
            d_scaled = _scale_loss(self.d_optimizer, _replica_scale(d_loss))
        d_variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_scaled, d_variables), d_variables)

        # P-Net: segmentation + adversarial (+ self-training) against the updated D.
        with p_tape:
            d_weak = self._d(probabilities[n:], weak["image"], permutation)
            adv = tf.reduce_mean(_bce_map(d_weak, 1.0))
            total = seg + self.weak_weight * weak_seg + self.lambda_adv * adv
            semi = None
            if self.lambda_semi > 0:
                semi = tf.reduce_mean(self._self_training(logits[n:], probabilities[n:], d_weak,
                                                          weak["labels"]))
                total += self.lambda_semi * semi
            scaled = _scale_loss(self.optimizer, _replica_scale(total))
        variables = self.pnet.trainable_variables
        self.optimizer.apply(p_tape.gradient(scaled, variables), variables)

        metrics = dict(loss=total, seg_loss=seg + self.weak_weight * weak_seg, adv_loss=adv,
                       d_loss=d_loss,
                       d_acc_real=tf.reduce_mean(tf.cast(d_real > 0, tf.float32)),
                       d_acc_fake=tf.reduce_mean(tf.cast(d_fake <= 0, tf.float32)))
        if semi is not None:
            metrics["semi_loss"] = semi
        return self._report(**metrics)

    def _self_training(self, logits, probabilities, d_logits, labels):
        """CE on pixels the discriminator trusts, targets limited to the image's labels."""
        confidence = tf.image.resize(tf.sigmoid(tf.cast(d_logits, tf.float32)),
                                     tf.shape(logits)[1:3])
        allowed = tf.concat([tf.ones_like(labels[:, :1]), labels], axis=-1)[:, None, None, :]
        target = tf.argmax(tf.where(allowed > 0, probabilities, -1.0), axis=-1, output_type=tf.int32)
        target = tf.where(confidence[..., 0] > self.semi_threshold, target, losses.VOID)
        return losses.segmentation_ce_per_image(logits, tf.stop_gradient(target)[..., None])

    def _report(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
