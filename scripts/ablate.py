#!/usr/bin/env python
"""`keras-attdef ablate`: the attention defences' terms one at a time against madry. See its --help."""
import sys

from keras_attdef.cli import main

if __name__ == "__main__":
    sys.exit(main(["ablate", *sys.argv[1:]]))
