"""What several subcommands share: the dataset flag and loading a saved classifier."""
from __future__ import annotations

from keras_attdef.datasets import SUPPORTED


def add_data_flags(parser, dataset_help: str | None = None) -> None:
    """`--dataset` (the datasets registry) and `--data-dir`."""
    parser.add_argument("--dataset", default="mnist", choices=list(SUPPORTED), help=dataset_help)
    parser.add_argument("--data-dir", default=None, help="folder with <dataset>.npz (default $KERAS_ATTDEF_DATA)")


def load_classifier(path):
    """The classifier inside a saved `.keras` file (the inner model of a saved `RobustModel`)."""
    import keras

    from keras_attdef.models import unwrap

    return unwrap(keras.models.load_model(path))
