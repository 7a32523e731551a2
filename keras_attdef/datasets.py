"""Image-classification data: tfds, local `.npz` files, or the MNIST copy bundled with the package.

Every loader returns float32 images in [0, 1], channels-last, and int32 labels.

Where the data comes from, in this order:

1. `data_dir` (argument) or the `KERAS_ATTDEF_DATA` environment variable: a folder with
   `<name>.npz` (or `<name>_*.npz`) holding `x_train, y_train, x_test, y_test` (any subset), uint8
   images, the layout of `keras.datasets` and of the offline copies this project is tested on.
2. `tensorflow_datasets`, from data already prepared on disk; with `download=True` tfds may also
   fetch it (that needs a network: offline, tfds retries for minutes before failing).
3. For MNIST only, the full official dataset shipped inside the package (`_data/mnist.npz`, 11 MB),
   so the main job and the examples run offline with no setup.

Example:

>>> from keras_attdef import datasets
>>> x, y = datasets.load("mnist", split="test")  # doctest: +SKIP
>>> x.shape, x.dtype, float(x.max()) <= 1.0      # doctest: +SKIP
((10000, 28, 28, 1), dtype('float32'), True)
"""
from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np

DATA_ENV = "KERAS_ATTDEF_DATA"
SUPPORTED = ("mnist", "fashion_mnist", "cifar10")
_BUNDLED_MNIST = Path(__file__).with_name("_data") / "mnist.npz"
_SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """No source could serve the requested dataset; the message says what to set."""


def load(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a dataset split as numpy arrays.

    Args:
        name: `"mnist"`, `"fashion_mnist"` or `"cifar10"`.
        split: `"train"` or `"test"`.
        data_dir: folder with `<name>.npz`; defaults to `$KERAS_ATTDEF_DATA`.
        download: let tensorflow_datasets download the data when no local source has it (the folder,
            prepared tfds data, then the bundled MNIST are tried first).
        limit: keep only the first `limit` examples.

    Returns:
        `(images, labels)`: float32 `(n, h, w, c)` in [0, 1] and int32 `(n,)`.

    Raises:
        ValueError: unknown name or split.
        DatasetNotFoundError: no source has the data; the message says what to set.

    Example:

    >>> x, y = load("mnist", "test", limit=8)   # $KERAS_ATTDEF_DATA, tfds, or the bundled copy
    >>> x.shape, y.dtype
    ((8, 28, 28, 1), dtype('int32'))
    """
    name = name.lower().replace("-", "_")
    if name not in SUPPORTED:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {SUPPORTED}.")
    if split not in _SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose 'train' or 'test'.")
    tried = []
    folder = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    arrays = None
    if folder:
        arrays = _from_folder(name, split, Path(folder), tried)
    if arrays is None:
        arrays = _from_tfds(name, split, False, tried)
    if arrays is None and name == "mnist" and _BUNDLED_MNIST.exists():
        if folder:  # the user named a folder: say that it was not used
            warnings.warn(f"keras_attdef: {'; '.join(tried)}. Using the official MNIST bundled with the package.",
                          stacklevel=2)
        with np.load(_BUNDLED_MNIST, allow_pickle=False) as f:
            arrays = (f[f"x_{split}"], f[f"y_{split}"])
    if arrays is None and download:  # last: offline, tfds retries a download for minutes before it gives up
        arrays = _from_tfds(name, split, True, tried)
    if arrays is None:
        raise DatasetNotFoundError(
            f"Could not find dataset {name!r} (split {split!r}). Tried: " + "; ".join(tried) + ". "
            f"Fix: set the environment variable {DATA_ENV} (or pass data_dir=) to a folder holding "
            f"{name}.npz with keys x_{split}, y_{split} (uint8 images, integer labels), or call "
            "load(..., download=True) on a machine with a network so tensorflow_datasets can fetch it."
        )
    images, labels = arrays
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return _normalise(images), np.asarray(labels).reshape(-1).astype(np.int32)


CIFAR_TRAIN_PART = 8000  # experiments on the CIFAR-10 test copy train on this many of its images


def experiment_split(name: str, data_dir=None, train_size: int | None = None, eval_size: int = 1000):
    """`(x_train, y_train, x_eval, y_eval, description)`: the data an experiment trains and evaluates on.

    MNIST-like sets: the official training split and the first `eval_size` test images. CIFAR-10, of which
    only the test copy is offline: that copy shuffled (seed 0), its first 8,000 images to train and
    `eval_size` of the last 2,000 to evaluate; not the official training set, so no figure made on it is
    comparable with published CIFAR-10 figures (the description says so).

    Example:

    >>> x, y, x_eval, y_eval, description = experiment_split("mnist", train_size=100, eval_size=10)
    >>> len(x), len(x_eval), description
    (100, 10, 'mnist: official training split, first 10 test images')
    """
    if name == "cifar10":
        x, y = load("cifar10", "test", data_dir)
        order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order], y[order]
        x_train, y_train = x[:CIFAR_TRAIN_PART], y[:CIFAR_TRAIN_PART]
        x_eval, y_eval = x[CIFAR_TRAIN_PART:][:eval_size], y[CIFAR_TRAIN_PART:][:eval_size]
        description = (f"CIFAR-10 test copy shuffled (seed 0): trained on its first {CIFAR_TRAIN_PART} images, "
                       f"evaluated on {len(y_eval)} of its held-out last {len(x) - CIFAR_TRAIN_PART} (not the "
                       "official training set; not comparable with published CIFAR-10 figures)")
    else:
        x_train, y_train = load(name, "train", data_dir)
        x_eval, y_eval = load(name, "test", data_dir, limit=eval_size)
        description = f"{name}: official training split, first {len(y_eval)} test images"
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    return x_train, y_train, x_eval, y_eval, description


def as_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 128,
    shuffle: bool = False,
    drop_remainder: bool = False,
    seed: int | None = None,
    repeat: bool = False,
):
    """Wraps arrays from `load` into a batched `tf.data.Dataset` of `(image, label)`.

    Args:
        images: float32 images.
        labels: integer labels, one per image.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (buffer = the whole array).
        drop_remainder: drop the last short batch (fixed batch shapes, e.g. for XLA or TPUs).
        seed: shuffle seed.
        repeat: repeat forever.

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> import numpy as np
    >>> ds = as_dataset(np.zeros((10, 28, 28, 1), "float32"), np.zeros(10, "int32"), batch_size=4,
    ...                 drop_remainder=True)
    >>> [int(b[0].shape[0]) for b in ds]
    [4, 4]
    """
    import tensorflow as tf

    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _normalise(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError("Float images must already lie in [0, 1]; save uint8 images instead.")
    return images


def _from_folder(name, split, folder: Path, tried):
    candidates = [folder / f"{name}.npz"] + sorted(Path(p) for p in glob.glob(str(folder / f"{name}_*.npz")))
    for path in candidates:
        if not path.exists():
            continue
        with np.load(path, allow_pickle=False) as f:
            if f"x_{split}" in f.files and f"y_{split}" in f.files:
                return f[f"x_{split}"], f[f"y_{split}"]
        tried.append(f"{path} has no x_{split}/y_{split}")
    if not any(p.exists() for p in candidates):
        tried.append(f"no {name}.npz in {folder}")
    return None


def _from_tfds(name, split, download, tried):
    try:
        import tensorflow_datasets as tfds
    except Exception as err:  # tfds optional at run time
        tried.append(f"tensorflow_datasets not importable ({err})")
        return None
    try:
        ds = tfds.load(name, split=split, as_supervised=True, batch_size=-1, download=download)
    except Exception as err:
        tried.append(f"tensorflow_datasets (download={download}): {type(err).__name__}")
        return None
    images, labels = tfds.as_numpy(ds)
    return images, labels
