#!/usr/bin/env python
"""Plain vs certified 784-h-10 nets on MNIST: stAdv attack success and certified accuracy per flow budget.

    python scripts/certify_mnist.py [--hidden 200] [--train-budget 0.25] [--budgets 0.1,0.2,0.25,0.5,1,7,100] [--sdp-images 20]
    python scripts/certify_mnist.py --threat linf --eps 0.1      # Raghunathan et al.'s sanity case

Every stage (training, certification, attack per budget) is saved under --out as it finishes, so a
stopped run resumes. All options: `python scripts/certify_mnist.py --help` (they are `keras-attdef certify`'s).
"""
import sys

from keras_attdef.cli import main

if __name__ == "__main__":
    sys.exit(main(["certify", *sys.argv[1:]]))
