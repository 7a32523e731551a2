#!/usr/bin/env python
"""`keras-attdef reproduce`: the AAD paper's MNIST table for every preset (resumable; hours). See its --help."""
import sys

from keras_attdef.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
