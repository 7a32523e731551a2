"""The one backend this library runs on: Keras 3 on TensorFlow (every step, attack and map is `tf.*`).

Checked when `keras_attdef` is imported, before Keras is: with another backend, `import keras` itself can
fail on a missing package (`No module named 'jax'`) that says nothing of the setting to change.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REQUIRED = "tensorflow"


def configured_backend() -> str:
    """The backend Keras runs on or will pick: the imported Keras's, else `$KERAS_BACKEND`, else keras.json's."""
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", REQUIRED)
    except (OSError, ValueError):
        return REQUIRED  # no readable config: Keras's own default is TensorFlow


def require_tensorflow_backend() -> None:
    """Raises ImportError, saying what to set, unless Keras runs (or will run) on TensorFlow."""
    backend = configured_backend()
    if backend != REQUIRED:
        raise ImportError(
            f"keras_attdef needs Keras on the TensorFlow backend, but Keras is set to {backend!r}. Set "
            "KERAS_BACKEND=tensorflow before starting Python (in a notebook: os.environ['KERAS_BACKEND'] = "
            "'tensorflow' before the first `import keras`), or put \"backend\": \"tensorflow\" in "
            "~/.keras/keras.json.")
