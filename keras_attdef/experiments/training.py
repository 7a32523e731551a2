"""Train a `RobustModel` once and keep it: the first stage of every experiment."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Callable

import keras
import numpy as np


def train_or_load(path, build_model: Callable[[], keras.Model], defense, x, y, epochs: int, lr: float = 1e-3,
                  batch_size: int = 128, seed: int = 0, verbose: int = 2, callbacks=(), eval_attack=None):
    """Loads the `RobustModel` saved at `path`, or trains `RobustModel(build_model(), defense)` and saves it.

    Args:
        path: the `.keras` file.
        build_model: returns the base classifier (called after seeding, so the same seed gives the same net).
        defense: a preset name, `Defense` or its dict.
        x: training images.
        y: training labels.
        epochs: epochs of Adam.
        lr: learning rate.
        batch_size: batch size.
        seed: seeds weights and shuffling.
        verbose: `fit` verbosity.
        callbacks: extra Keras callbacks.
        eval_attack: the model's `eval_attack` (None: clean validation only).

    Returns:
        `(model, seconds)`: seconds of training, or None when the model was loaded.
    """
    from keras_attdef import RobustModel, datasets

    path = Path(path)
    if path.exists():
        print(f"[resume] loading {path}")
        return keras.models.load_model(path), None
    keras.utils.set_random_seed(seed)
    robust = RobustModel(build_model(), defense=defense, eval_attack=eval_attack)
    robust.compile(optimizer=keras.optimizers.Adam(lr), metrics=["accuracy"])
    start = time.time()
    robust.fit(datasets.as_dataset(x, y, batch_size, shuffle=True, seed=seed), epochs=epochs, verbose=verbose, shuffle=False,
               callbacks=list(callbacks))
    seconds = time.time() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    robust.save(path)
    return robust, seconds


class _Checkpoint(keras.callbacks.Callback):
    """Saves the model and the progress after every epoch and every `every_seconds` within one.

    Stops when the next epoch would pass the time limit. Within an epoch it records how many batches are
    done, so a run killed mid-epoch (a session ending during an 18-minute PGD-40 epoch) loses at most
    `every_seconds` of training instead of the epoch.
    """

    def __init__(self, folder: Path, progress: dict, time_limit: float | None, every_seconds: float | None,
                 first_batch: int = 0, epochs: int | None = None):
        super().__init__()
        self.folder, self.progress, self.time_limit, self.epochs = folder, progress, time_limit, epochs
        self.every_seconds, self.first_batch = every_seconds, first_batch

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.last_save = time.time()

    def on_train_batch_end(self, batch, logs=None):
        now = time.time()
        if self.every_seconds is not None and now - self.last_save >= self.every_seconds:
            self.progress["batches_done"] = self.first_batch + batch + 1
            self._add_seconds(now - self.last_save)
            self.last_save = now
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._add_seconds(time.time() - self.last_save)
        seconds = self.progress.pop("current_epoch_seconds")
        self.progress["epochs_done"] = epoch + 1
        self.progress["batches_done"] = 0
        self.progress["epoch_seconds"].append(seconds)
        self.progress["logs"].append({k: float(v) for k, v in (logs or {}).items()})
        more_wanted = self.epochs is None or epoch + 1 < self.epochs
        if more_wanted and self.time_limit is not None and self.progress["seconds"] + seconds > self.time_limit:
            self.progress["stopped"] = f"the next epoch would pass the {self.time_limit / 60:g}-minute limit"
            self.model.stop_training = True
        # the classifier's weights after each epoch, for comparisons at equal epochs (e.g. the AAD ablation)
        self.model.base_model.save_weights(self.folder / f"epoch_{epoch + 1}.weights.h5")
        self._save()

    def _add_seconds(self, seconds: float) -> None:
        self.progress["seconds"] += seconds
        self.progress["current_epoch_seconds"] = self.progress.get("current_epoch_seconds", 0.0) + seconds

    def _save(self) -> None:
        partial = self.folder / "checkpoint.partial.keras"
        self.model.save(partial)
        os.replace(partial, self.folder / "checkpoint.keras")
        _write_json(self.folder / "progress.json", self.progress)


def _write_json(path: Path, value) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)


def read_progress(folder) -> dict | None:
    """The progress `train_resumable` saved in `folder` (None when there is none); its model may be gone."""
    path = Path(folder) / "progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def train_resumable(folder, build_model: Callable[[], keras.Model], defense, x, y, epochs: int, lr: float = 1e-3,
                    batch_size: int = 128, seed: int = 0, time_limit: float | None = None, verbose: int = 2,
                    checkpoint_seconds: float | None = 300.0):
    """Trains `RobustModel(build_model(), defense)` epoch by epoch, resuming where it was stopped.

    The model (weights and optimizer state) goes to `folder/checkpoint.keras` and the progress (epochs
    and batches done, training seconds per epoch, logs) to `folder/progress.json` after every epoch and
    every `checkpoint_seconds` within one, and the classifier's weights after epoch k to
    `folder/epoch_k.weights.h5`; a stopped run continues from there, mid-epoch included: each
    epoch's batch order is fixed by `seed + epoch`, so the resumed epoch skips exactly the batches already
    trained on. With `time_limit`, training stops after the last epoch that keeps the total within it
    (judged from the last epoch's time), and the progress says so.

    Args:
        folder: where the checkpoint and progress live.
        build_model: returns the base classifier (called after seeding).
        defense: a preset name, `Defense` or its dict.
        x: training images.
        y: training labels.
        epochs: epochs wanted.
        lr: Adam learning rate.
        batch_size: batch size.
        seed: seeds weights and shuffling.
        time_limit: training seconds allowed, or None.
        verbose: `fit` verbosity.
        checkpoint_seconds: save within an epoch this often (None: at epoch ends only).

    Returns:
        `(model, progress)`: the `RobustModel` and `{"epochs_done", "batches_done", "seconds",
        "epoch_seconds", "logs", "stopped", "run_id"}` (`run_id` is new whenever training starts from
        scratch; the logs of an epoch that was resumed cover the batches after the resume).

    Example:

    >>> import numpy as np, tempfile
    >>> from keras_attdef import models
    >>> x, y = np.random.rand(64, 28, 28, 1).astype("float32"), np.arange(64) % 10
    >>> folder = tempfile.mkdtemp()
    >>> model, progress = train_resumable(folder, models.lenet, "plain", x, y, epochs=1, verbose=0)
    >>> progress["epochs_done"], train_resumable(folder, models.lenet, "plain", x, y, 2, verbose=0)[1]["epochs_done"]
    (1, 2)
    """
    from keras_attdef import RobustModel, datasets

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved, checkpoint = read_progress(folder), folder / "checkpoint.keras"
    if saved is not None and checkpoint.exists():
        progress = {"batches_done": 0, **saved}
        robust = keras.models.load_model(checkpoint)
        if verbose:
            print(f"[resume] {folder}: {progress['epochs_done']} epoch(s) and {progress['batches_done']} batch(es) done")
    else:
        if saved is not None and verbose:
            print(f"[restart] {folder}: progress.json without checkpoint.keras (a new checkout keeps no models); "
                  "training from the start under a new run id")
        progress = {"epochs_done": 0, "batches_done": 0, "seconds": 0.0, "epoch_seconds": [], "logs": [],
                    "stopped": None, "run_id": uuid.uuid4().hex}
        keras.utils.set_random_seed(seed)
        robust = RobustModel(build_model(), defense=defense, eval_attack=None)
        robust.compile(optimizer=keras.optimizers.Adam(lr), metrics=["accuracy"])
    while progress["epochs_done"] < epochs and not progress["stopped"]:
        epoch, skip = progress["epochs_done"], progress["batches_done"]
        keras.utils.set_random_seed(seed + epoch + skip)
        order = np.random.default_rng(seed + epoch).permutation(len(x))  # independent of TF's global seed
        batches = datasets.as_dataset(x[order], y[order], batch_size).skip(skip)
        if verbose:  # fit below sees one epoch at a time and would print "Epoch e/e"
            print(f"[train] {folder.name}: epoch {epoch + 1} of {epochs}" + (f", from batch {skip + 1}" if skip else ""))
        robust.fit(batches, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose, shuffle=False,
                   callbacks=[_Checkpoint(folder, progress, time_limit, checkpoint_seconds, skip, epochs)])
    return robust, progress
