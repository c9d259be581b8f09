"""A few L-Net and P-Net steps under whatever strategy this process gets; saves losses and weights.

Run as ``python -m mw_steps OUT_DIR`` by every worker (with TF_CONFIG and
--strategy=multi_worker), or call ``train_steps`` in-process with a
MirroredStrategy; ``test_multi_worker`` compares the two.
"""

import os
import sys

import numpy as np

STEPS = 3
C = 4


def data(seed=0, n=4, size=32):
    """A fixed strong / weak / L-Net batch (every replica takes its contiguous half)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    masks = rng.choice([0, 1, 2, 3, 255], (n, size, size, 1)).astype(np.uint8)
    labels = rng.integers(0, 2, (n, C - 1)).astype(np.float32)
    strong = {"image": images, "mask": masks}
    weak = {"image": images[::-1].copy(), "mask": masks[::-1].copy(), "labels": labels}
    return (strong, weak), ({"image": images, "mask": masks},
                            {"image": images[::-1].copy(), "labels": labels})


def build(strategy):
    """(L-Net trainer, TS3 trainer) built under ``strategy`` with sync BN and SGD."""
    import keras

    from tss_keras.models.discriminator import build_discriminator
    from tss_keras.models.encoder import build_encoder
    from tss_keras.models.lnet import build_lnet
    from tss_keras.models.pnet import build_pnet
    from tss_keras.training.lnet_model import LNetTrainer
    from tss_keras.training.ts3_model import TS3Model

    keras.utils.set_random_seed(0)
    with strategy.scope():
        lnet = build_lnet(build_encoder("tiny", 8, sync_bn=True), C, sync_bn=True)
        lnet_trainer = LNetTrainer(lnet, C)
        lnet_trainer.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
        lnet_trainer.optimizer.build(lnet.trainable_variables)
        pnet = build_pnet(build_encoder("tiny", 8, sync_bn=True), C, aspp_filters=16,
                          aspp_rates=(1, 2), dropout=0.0, sync_bn=True)
        discriminator = build_discriminator(C, 8)
        d_optimizer = keras.optimizers.Adam(1e-3)
        d_optimizer.build(discriminator.trainable_variables)
        ts3 = TS3Model(pnet, discriminator, C, lambda_adv=0.1, d_optimizer=d_optimizer,
                       shuffle_classes=False, d_downsample=2)
        ts3.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
        ts3.optimizer.build(pnet.trainable_variables)
    return lnet_trainer, ts3


def load_initial(models, path):
    """Sets every variable from ``path`` (so both runs start from the same weights)."""
    saved = np.load(path)
    variables = [v for model in models for v in model.variables]
    for i, variable in enumerate(variables):
        variable.assign(saved[f"v{i}"])


def train_steps(strategy, cluster, initial, directory):
    """Trains both models STEPS steps; returns {name: array} of losses and final weights."""
    from loop_helpers import fixed_stream
    from tss_keras.training.loop import TrainingLoop

    lnet_trainer, ts3 = build(strategy)
    load_initial([lnet_trainer.lnet, ts3.pnet, ts3.discriminator], initial)
    pnet_data, lnet_data = data()
    out = {}
    for name, trainer, batch, trackables in (
            ("lnet", lnet_trainer, lnet_data, {"model": lnet_trainer.lnet,
                                               "optimizer": lnet_trainer.optimizer}),
            ("pnet", ts3, pnet_data, {"model": ts3.pnet, "discriminator": ts3.discriminator,
                                      "optimizer": ts3.optimizer,
                                      "d_optimizer": ts3.d_optimizer})):
        losses = []
        TrainingLoop(strategy, trainer, fixed_stream(batch), STEPS,
                     os.path.join(directory, name), trackables, checkpoint_every=STEPS,
                     cluster=cluster, verbose=False,
                     monitors=[lambda step, values: losses.append(float(values["loss"]))]).run()
        out[f"{name}_losses"] = np.array(losses)
        for i, variable in enumerate(trainer.variables):
            out[f"{name}_w{i}"] = variable.numpy()
    return out


def main():
    out_dir = sys.argv[1]
    from tss_keras.training.distribute import create_strategy

    strategy, cluster = create_strategy("multi_worker")
    result = train_steps(strategy, cluster, os.path.join(out_dir, "initial.npz"),
                         os.path.join(out_dir, f"checkpoints{cluster.worker_index}"))
    np.savez(os.path.join(out_dir, f"worker{cluster.worker_index}.npz"), **result)


if __name__ == "__main__":
    main()
