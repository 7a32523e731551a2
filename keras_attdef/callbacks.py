"""Training callbacks: a wall-clock budget."""
from __future__ import annotations

import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after `seconds` of training (checked after every batch), for equal-budget comparisons.

    Args:
        seconds: training time allowed.

    Example:

    >>> budget = TimeBudget(seconds=600)
    >>> # robust.fit(ds, epochs=100, callbacks=[budget]); budget.elapsed, budget.epochs_seen
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.elapsed = 0.0
        self.steps_seen = 0
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps_seen += 1
        self.elapsed = time.perf_counter() - self._start
        if self.elapsed >= self.seconds:
            self.model.stop_training = True
