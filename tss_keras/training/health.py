"""Warnings about an adversarial run going wrong, from the discriminator's accuracies."""

import sys


class DiscriminatorHealth:
    """Warns (once each) when the discriminator wins outright or collapses.

    Wins outright: accuracy above ``high`` on real and on fake maps for
    ``patience`` steps in a row; its gradient then says "everything you do
    is fake", which carries no information. Collapses: accuracy below
    ``low`` on real or on fake maps for ``patience`` steps (it calls
    everything real, or everything fake).

    Args:
        high, low: accuracy bounds.
        patience: consecutive steps before warning.
        stream: where warnings go.
    """

    def __init__(self, high=0.95, low=0.05, patience=200, stream=None):
        self.high, self.low, self.patience = high, low, patience
        self.stream = stream or sys.stderr
        self.winning = self.collapsed = 0
        self.warned = set()

    def __call__(self, step, values):
        real, fake = float(values["d_acc_real"]), float(values["d_acc_fake"])
        self.winning = self.winning + 1 if min(real, fake) > self.high else 0
        self.collapsed = self.collapsed + 1 if min(real, fake) < self.low else 0
        if self.winning >= self.patience:
            self._warn("wins", step, f"the discriminator wins outright (accuracy real {real:.2f}, "
                                     f"fake {fake:.2f} for {self.patience} steps); its gradient "
                                     f"no longer informs the P-Net: lower --d_lr or try "
                                     f"--discriminator=matched")
        if self.collapsed >= self.patience:
            self._warn("collapsed", step, f"the discriminator collapsed (accuracy real "
                                          f"{real:.2f}, fake {fake:.2f} for {self.patience} "
                                          f"steps)")

    def _warn(self, kind, step, message):
        if kind not in self.warned:
            self.warned.add(kind)
            print(f"warning: step {step}: {message}", file=self.stream, flush=True)
