import numpy as np
import pytest

from keras_attdef import datasets


def test_local_npz_matches_the_file_and_is_normalised(tmp_path):
    path = datasets.Path(datasets.os.environ.get("KERAS_ATTDEF_DATA", "/nonexistent")) / "mnist.npz"
    if not path.exists():
        pytest.skip("needs mnist.npz in $KERAS_ATTDEF_DATA")
    raw = np.load(path)
    x, y = datasets.load("mnist", "test", limit=100)
    assert x.shape == (100, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y, raw["y_test"][:100])
    np.testing.assert_allclose(x[..., 0] * 255, raw["x_test"][:100], atol=1e-3)


def test_cifar_from_prefixed_file():
    if not (datasets.Path(datasets.os.environ.get("KERAS_ATTDEF_DATA", "/nonexistent")) / "cifar10_jpeg_test.npz").exists():
        pytest.skip("needs the offline CIFAR-10 copy in $KERAS_ATTDEF_DATA")
    x, y = datasets.load("cifar10", "test", limit=16)
    assert x.shape == (16, 32, 32, 3) and 0 <= x.min() and x.max() <= 1


def test_missing_dataset_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_ATTDEF_DATA", raising=False)
    with pytest.raises(datasets.DatasetNotFoundError, match="KERAS_ATTDEF_DATA"):
        datasets.load("fashion_mnist", "train", data_dir=tmp_path)


def test_split_missing_in_file_is_an_error(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2))
    with pytest.raises(datasets.DatasetNotFoundError, match="x_train"):
        datasets.load("cifar10", "train", data_dir=tmp_path)


def test_bundled_mnist_is_the_full_official_set_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_ATTDEF_DATA", raising=False)
    with pytest.warns(UserWarning, match="no mnist.npz in"):    # a named folder without it: say so
        x, y = datasets.load("mnist", "train", data_dir=tmp_path)
    assert x.shape == (60000, 28, 28, 1) and set(np.unique(y)) == set(range(10))
    assert abs(float(x.mean()) - 0.13066) < 1e-4                  # the official train mean
    x_test, y_test = datasets.load("mnist", "test", data_dir=tmp_path)
    assert x_test.shape == (10000, 28, 28, 1) and int(y_test[0]) == 7   # the official first test label


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        datasets.load("mnist", "validation")


def test_as_dataset_batches_and_drops_remainder():
    x = np.zeros((10, 28, 28, 1), np.float32)
    y = np.arange(10)
    sizes = [int(b[0].shape[0]) for b in datasets.as_dataset(x, y, 4, shuffle=True, seed=0)]
    assert sizes == [4, 4, 2]
    sizes = [int(b[0].shape[0]) for b in datasets.as_dataset(x, y, 4, drop_remainder=True)]
    assert sizes == [4, 4]
    with pytest.raises(ValueError):
        datasets.as_dataset(x, y[:3])


def test_download_is_tried_only_when_no_local_copy_serves(monkeypatch):
    # Offline, a tfds download retries for minutes: the notebooks pass download=True for Colab, and the
    # bundled MNIST must serve them first.
    calls = []
    monkeypatch.delenv("KERAS_ATTDEF_DATA", raising=False)
    monkeypatch.setattr(datasets, "_from_tfds", lambda name, split, download, tried: calls.append(download))
    x, _ = datasets.load("mnist", "test", download=True, limit=4)
    assert x.shape == (4, 28, 28, 1) and calls == [False]
    with pytest.raises(datasets.DatasetNotFoundError):
        datasets.load("cifar10", "test", download=True)
    assert calls == [False, False, True]
