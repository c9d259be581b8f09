"""LNetTrainer: the L-Net's train_step (agnostic BCE + multi-label BCE)."""

import keras
import tensorflow as tf

from tss_keras.training import losses
from tss_keras.training.precision import apply_gradients, scale_loss


class LNetTrainer(keras.Model):
    """Trains an L-Net from two streams per step.

    Each step gets ``(mask_batch, label_batch)``: ``mask_batch`` has
    ``image`` and ``mask`` (strong-pool images, or the agnostic set in the 0 %
    setting; every foreground class counts as 1), ``label_batch`` has
    ``image`` and ``labels`` (multi-hot image-level labels of all training
    images). Loss = agnostic BCE (void ignored) + ``cls_weight`` x multi-label
    BCE. With ``mask_labels_for_cls`` the mask batch's labels (read from its
    masks) also train the classifier; turn it off when the masks come from
    another class list (the agnostic set).

    *(choice)* With ``cam_pixel_weight`` > 0 the masks also supervise the CAM
    head per pixel: on mask-batch images every class channel learns BCE
    against "this pixel is that class" (void ignored). Weak classes never
    occur in those images, so their channels learn only "not here" from them
    and "somewhere in this image" from their image labels; the shared
    features are trained to localise, which sharpens every class's CAM.

    *(choice)* With ``presence_weight`` > 0 the labelled images also teach the
    agnostic head: each holds an object, so the top 5 % of its agnostic
    logits learn "foreground" (``losses.presence_bce_per_image``), which lets
    the head answer on classes it has no masks for.

    Args:
        lnet: the model from ``build_lnet``.
        num_classes: K + 1.
        cls_weight: weight of the classification loss.
        mask_labels_for_cls: see above.
        cam_pixel_weight: weight of the per-pixel CAM loss (0: off).
        head_lr_multiplier: the heads learn this many times faster than the
            encoder (gradients scaled; meant for SGD).
        presence_weight: weight of the presence loss on labelled images (0: off).
    """

    def __init__(self, lnet, num_classes, cls_weight=1.0, mask_labels_for_cls=True,
                 cam_pixel_weight=0.0, head_lr_multiplier=1.0, presence_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.lnet = lnet
        self.num_classes = num_classes
        self.cls_weight = cls_weight
        self.mask_labels_for_cls = mask_labels_for_cls
        self.cam_pixel_weight = cam_pixel_weight if mask_labels_for_cls else 0.0
        self.presence_weight = presence_weight
        from tss_keras.training.ts3_model import head_variable_paths
        self.head_boost = (head_lr_multiplier, head_variable_paths(lnet))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.agnostic_tracker = keras.metrics.Mean(name="agnostic_loss")
        self.cls_tracker = keras.metrics.Mean(name="cls_loss")

    def call(self, images, training=False):
        return self.lnet(images, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.agnostic_tracker, self.cls_tracker]

    def compute_losses(self, data, training):
        """Returns (total, agnostic, cls) batch-mean losses (unscaled)."""
        mask_batch, label_batch = data
        # Two passes: the streams' images may differ in size (crops vs whole images).
        masked = self.lnet(mask_batch["image"], training=training)
        labelled = self.lnet(label_batch["image"], training=training)
        agnostic = tf.reduce_mean(losses.agnostic_bce_per_image(masked["agnostic"],
                                                                mask_batch["mask"]))
        if self.presence_weight:
            agnostic += self.presence_weight * tf.reduce_mean(losses.presence_bce_per_image(
                labelled["agnostic"], label_batch["labels"]))
        cls_per_image = losses.multilabel_bce_per_image(labelled["logits"],
                                                        label_batch["labels"])
        if self.mask_labels_for_cls:
            mask_labels = losses.labels_from_mask(mask_batch["mask"], self.num_classes)
            cls_per_image = tf.concat([losses.multilabel_bce_per_image(
                masked["logits"], mask_labels), cls_per_image], axis=0)
        cls = tf.reduce_mean(cls_per_image)
        if self.cam_pixel_weight:
            cls += self.cam_pixel_weight * tf.reduce_mean(losses.cam_pixel_bce_per_image(
                masked["cam"], mask_batch["mask"], self.num_classes))
        return agnostic + self.cls_weight * cls, agnostic, cls

    def train_step(self, data):
        with tf.GradientTape() as tape:
            total, agnostic, cls = self.compute_losses(data, training=True)
            scaled = scale_loss(self.optimizer, losses.per_replica(total))
        variables = self.lnet.trainable_variables
        apply_gradients(self.optimizer, tape.gradient(scaled, variables), variables,
                        self.head_boost)
        self.loss_tracker.update_state(total)
        self.agnostic_tracker.update_state(agnostic)
        self.cls_tracker.update_state(cls)
        return {m.name: m.result() for m in self.metrics}
