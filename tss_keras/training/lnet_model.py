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

    Args:
        lnet: the model from ``build_lnet``.
        num_classes: K + 1.
        cls_weight: weight of the classification loss.
        mask_labels_for_cls: see above.
    """

    def __init__(self, lnet, num_classes, cls_weight=1.0, mask_labels_for_cls=True, **kwargs):
        super().__init__(**kwargs)
        self.lnet = lnet
        self.num_classes = num_classes
        self.cls_weight = cls_weight
        self.mask_labels_for_cls = mask_labels_for_cls
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
        n = tf.shape(mask_batch["image"])[0]
        images = tf.concat([mask_batch["image"], label_batch["image"]], axis=0)
        outputs = self.lnet(images, training=training)
        agnostic = tf.reduce_mean(losses.agnostic_bce_per_image(outputs["agnostic"][:n],
                                                                mask_batch["mask"]))
        cls_per_image = losses.multilabel_bce_per_image(outputs["logits"][n:],
                                                        label_batch["labels"])
        if self.mask_labels_for_cls:
            mask_labels = losses.labels_from_mask(mask_batch["mask"], self.num_classes)
            cls_per_image = tf.concat([losses.multilabel_bce_per_image(
                outputs["logits"][:n], mask_labels), cls_per_image], axis=0)
        cls = tf.reduce_mean(cls_per_image)
        return agnostic + self.cls_weight * cls, agnostic, cls

    def train_step(self, data):
        with tf.GradientTape() as tape:
            total, agnostic, cls = self.compute_losses(data, training=True)
            scaled = scale_loss(self.optimizer, losses.per_replica(total))
        variables = self.lnet.trainable_variables
        apply_gradients(self.optimizer, tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(total)
        self.agnostic_tracker.update_state(agnostic)
        self.cls_tracker.update_state(cls)
        return {m.name: m.result() for m in self.metrics}
