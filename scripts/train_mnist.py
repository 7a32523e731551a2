#!/usr/bin/env python
"""Train a LeNet on MNIST with a defence and print its robustness table.

    python scripts/train_mnist.py --defense plain|madry|fast|alp|trades --epochs 3 [--out runs/madry]

A killed run resumes from its last finished epoch (BackupAndRestore in <out>/backup). All options:
`python scripts/train_mnist.py --help` (they are `keras-attdef train`'s).
"""
import sys

from keras_attdef.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--dataset", "mnist", *sys.argv[1:]]))
