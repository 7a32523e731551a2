"""Shared fixtures. Two logical CPUs are configured before TensorFlow starts, for MirroredStrategy."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the scripts do; ~1.8x faster on this CPU
# Data: `$KERAS_ATTDEF_DATA` when set (the offline MNIST / CIFAR-10 copies), else the MNIST bundled with the
# package; tests that need a data set neither has skip with the reason.

import hashlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from keras_attdef import datasets, models  # noqa: E402

# Trained fixtures are cached on disk between test runs, keyed by their name, seed and the code that made
# them (the package's sources and the TensorFlow and Keras versions): a change to any of them retrains.
PACKAGE = Path(__file__).resolve().parents[1] / "keras_attdef"
FIXTURE_CACHE = Path(os.environ.get("KERAS_ATTDEF_TEST_CACHE", Path.home() / ".cache" / "keras_attdef" / "fixtures"))


def _code_key() -> str:
    digest = hashlib.sha256(f"{tf.__version__} {keras.__version__}".encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


CODE_KEY = _code_key()


def cached_model(name: str, seed: int, build):
    """The model `build()` trains, loaded from the fixture cache when this name, seed and code made it before."""
    path = FIXTURE_CACHE / f"{name}-seed{seed}-{CODE_KEY}.keras"
    if path.exists():
        try:
            return keras.models.load_model(path)
        except Exception:  # a file from an interrupted write or another Keras: train again
            path.unlink(missing_ok=True)
    keras.utils.set_random_seed(seed)
    model = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.keras")
    model.save(partial)
    os.replace(partial, path)
    for stale in FIXTURE_CACHE.glob(f"{name}-seed{seed}-*.keras"):  # made by other code: never read again
        if stale != path and ".partial" not in stale.name:
            stale.unlink(missing_ok=True)
    return model


@pytest.fixture(scope="session")
def mnist_train():
    return datasets.load("mnist", "train", limit=6000)


@pytest.fixture(scope="session")
def mnist_test():
    return datasets.load("mnist", "test", limit=512)


@pytest.fixture(scope="session")
def trained_lenet(mnist_train):
    """A plainly trained LeNet (~97% test accuracy after one epoch on 6,000 digits)."""
    def build():
        net = models.lenet()
        net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
        net.fit(*mnist_train, batch_size=64, epochs=2, verbose=0)
        return net

    return cached_model("trained_lenet", 1, build)


@pytest.fixture(scope="session")
def fast_at_lenet(mnist_train):
    """`RobustModel(lenet, fast)`: FGSM from a random start at eps 0.2, ramped over 60 steps, 2 epochs on 6,000
    digits (PGD-10 accuracy ~0.9 at eps 0.2, against ~0 for `trained_lenet`)."""
    from keras_attdef import RobustModel, defenses

    def build():
        robust = RobustModel(models.lenet(), defense=defenses.fast(eps=0.2, warmup_steps=60))
        robust.compile(optimizer="adam", metrics=["accuracy"])
        robust.fit(*mnist_train, batch_size=64, epochs=2, verbose=0)
        return robust

    return cached_model("fast_at_lenet", 0, build)


@pytest.fixture
def tiny_batch():
    rng = np.random.default_rng(0)
    return rng.random((8, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 8).astype(np.int32)


@pytest.fixture(scope="session")
def trained_dense(mnist_train):
    """A plainly trained 784-16-10 network (the architecture the certificate covers)."""
    def build():
        net = models.two_layer_dense(16)
        net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(*mnist_train, epochs=2, verbose=0)
        return net

    return cached_model("trained_dense", 0, build)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the 2 logical CPUs for the whole session.

    Every new strategy numbers its collective all-reduces from the same start, and the runtime matches
    them by that number: two strategies in one process can pair up all-reduces of different models
    ("Shape mismatch in the collective instance"). Sharing one strategy keeps the numbers unique.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
