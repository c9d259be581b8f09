"""Progress display: a live bar on a terminal, plain lines in a redirected log.

Keras progress bars write colour codes and backspaces, which turn a log file
into noise; when stdout is not a terminal, this prints a plain line at most
every ``every`` items (and at the end) instead.
"""

import sys
import time

import keras


class Progress:
    """Shows progress of ``total`` items.

    Args:
        total: number of items (steps, images).
        name: what is being done, shown at the start of plain lines.
        unit: the item's name (``step``, ``image``).
        every: plain-line interval in items (default: about 10 lines in all).
        enabled: show anything at all (False on non-chief workers).
        start: items already done (a resumed run).
    """

    def __init__(self, total, name, unit="item", every=None, enabled=True, start=0):
        self.total, self.name, self.unit = total, name, unit
        self.every = every or max(1, total // 10)
        self.enabled = enabled
        self.live = enabled and sys.stdout.isatty()
        self.bar = keras.utils.Progbar(total, unit_name=unit) if self.live else None
        self.last_time, self.last_done = time.perf_counter(), start
        if self.live and start:
            self.bar.update(start)

    def update(self, done, values=None):
        """Reports ``done`` items finished, with optional named numbers (losses)."""
        if not self.enabled:
            return
        values = values or {}
        if self.live:
            self.bar.update(done, [(k, float(v)) for k, v in values.items()])
            return
        if done <= self.last_done or (done % self.every and done != self.total):
            return
        now = time.perf_counter()
        per_item = (now - self.last_time) / max(1, done - self.last_done)
        parts = [f"{self.name} {done}/{self.total} {self.unit}s",
                 f"{per_item * 1000:.0f} ms/{self.unit}"]
        parts += [f"{k}: {float(v):.4f}" for k, v in values.items()]
        print(" - ".join(parts), flush=True)
        self.last_time, self.last_done = now, done
