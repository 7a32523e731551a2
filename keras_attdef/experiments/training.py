"""Train a `RobustModel` once and keep it: the first stage of every experiment."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import keras


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
    robust.fit(datasets.as_dataset(x, y, batch_size, shuffle=True, seed=seed), epochs=epochs, verbose=verbose,
               callbacks=list(callbacks))
    seconds = time.time() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    robust.save(path)
    return robust, seconds
