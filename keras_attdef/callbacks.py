"""Training callbacks: a wall-clock budget, and a guard against catastrophic overfitting."""
from __future__ import annotations

import time
import warnings

import keras
import numpy as np

from keras_attdef.attacks.spec import AttackSpec, compile_attack


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


class CatastrophicOverfittingMonitor(keras.callbacks.Callback):
    """Checks after each epoch that the model resists a multi-step attack, not only a single step.

    Training on one attack step (FGSM, StepLL, `fast`) or on few steps without a random start (TRADES below
    7 steps) can collapse: the model learns to defeat the single gradient step, and PGD then fools it on
    nearly every point (Wong et al. 2020 call it catastrophic overfitting). Its training log does not show
    it: `adv_accuracy` on its own attack stays high. This callback attacks a held-out batch with FGSM and
    with PGD after every epoch, logs both as `fgsm_check_accuracy` and `pgd_check_accuracy`, and when FGSM
    accuracy exceeds PGD accuracy by more than `max_gap` it warns, or with `action="stop"` stops training
    and restores the weights of the last epoch that passed (Wong et al.'s early stopping).

    A robust model shows a small gap: on this project's MNIST reproduction, madry 2.8 points (FGSM 95.7%,
    PGD-20 92.9%), trades 3.9, fast 16.8; the collapsed TRADES run 98.5 (FGSM 98.5%, PGD-20 0.0%) and the
    StepLL-trained aad 58.9. The check is skipped while the defence's budget still ramps up (`warmup_steps`).

    Args:
        x: held-out images (a few hundred are enough; every epoch attacks all of them).
        y: their integer labels.
        eps: Linf budget of both attacks (the training budget).
        pgd_steps: PGD steps (random start, step 2.5 eps / steps).
        max_gap: largest FGSM-over-PGD accuracy gap (a fraction) that passes.
        action: `"warn"` or `"stop"` (stop and restore the last passing weights).

    Example:

    >>> from keras_attdef import datasets
    >>> x_val, y_val = datasets.load("mnist", "test", limit=256)
    >>> monitor = CatastrophicOverfittingMonitor(x_val, y_val, eps=0.3)
    >>> # robust.fit(ds, epochs=10, callbacks=[monitor]); monitor.collapsed_epoch  # None if it never collapsed
    """

    def __init__(self, x, y, eps: float, pgd_steps: int = 10, max_gap: float = 0.3, action: str = "warn"):
        super().__init__()
        if action not in ("warn", "stop"):
            raise ValueError(f"action must be 'warn' or 'stop', got {action!r}.")
        if not 0.0 < max_gap <= 1.0:
            raise ValueError(f"max_gap is a fraction of accuracy in (0, 1], got {max_gap}.")
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y).astype(np.int32).reshape(-1)
        if len(self.x) != len(self.y) or not len(self.y):
            raise ValueError(f"x and y must hold the same number (> 0) of examples, got {len(self.x)} and "
                             f"{len(self.y)}.")
        self.eps, self.pgd_steps, self.max_gap, self.action = float(eps), int(pgd_steps), float(max_gap), action
        self.collapsed_epoch = None
        self.history = []
        self._runners = None
        self._passing_weights = None

    def _accuracies(self, base) -> dict:
        if self._runners is None:  # compiled once: one trace per attack for the whole fit
            specs = {"fgsm": AttackSpec("fgsm", eps=self.eps),
                     "pgd": AttackSpec("pgd", eps=self.eps, steps=self.pgd_steps,
                                       step_size=2.5 * self.eps / self.pgd_steps, random_start=True)}
            self._runners = {n: compile_attack(s, base) for n, s in specs.items()}
        accuracy = {}
        for name, run in self._runners.items():
            logits = base.predict_on_batch(np.asarray(run(self.x, self.y)))
            accuracy[name] = float(np.mean(np.argmax(logits, -1) == self.y))
        return accuracy

    def _warming_up(self) -> bool:
        defense = getattr(self.model, "defense", None)
        warmup = getattr(defense, "warmup_steps", 0) or 0
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) < warmup

    def on_epoch_end(self, epoch, logs=None):
        base = getattr(self.model, "base_model", self.model)
        accuracy = self._accuracies(base)
        gap = accuracy["fgsm"] - accuracy["pgd"]
        if logs is not None:
            logs["fgsm_check_accuracy"], logs["pgd_check_accuracy"] = accuracy["fgsm"], accuracy["pgd"]
        checked = not self._warming_up()
        self.history.append({"epoch": epoch + 1, **accuracy, "checked": checked})
        if not checked:
            return
        if gap <= self.max_gap:
            if self.action == "stop":
                self._passing_weights = base.get_weights()
            return
        if self.collapsed_epoch is None:
            self.collapsed_epoch = epoch + 1
        message = (f"Catastrophic overfitting after epoch {epoch + 1}: on {len(self.y)} held-out images FGSM "
                   f"leaves {accuracy['fgsm']:.1%} correct but PGD-{self.pgd_steps} only {accuracy['pgd']:.1%} "
                   f"(eps {self.eps:g}). The model has learnt to defeat single gradient steps, not to be robust. "
                   "Train with more attack steps, a random start in the eps-ball, a smaller step or a lower "
                   "learning rate.")
        if self.action == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return
        self.model.stop_training = True
        if self._passing_weights is not None:
            base.set_weights(self._passing_weights)
            message += " Training stopped; the weights of the last epoch that passed are restored."
        else:
            message += " Training stopped; no epoch passed, so the weights are left as they are."
        warnings.warn(message, RuntimeWarning, stacklevel=2)
