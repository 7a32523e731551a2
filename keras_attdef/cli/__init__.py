"""Command line: `keras-attdef train | evaluate | attack | certify | detect | reproduce | ablate | report`.

One module per group of subcommands; each adds its parser with `set_defaults(func=...)`, so `main` only
parses and calls. Runs offline by default: data comes from `--data-dir` / `$KERAS_ATTDEF_DATA`, prepared
tfds data, or the MNIST copy bundled with the package.
"""
from __future__ import annotations

import argparse
import os
import sys

from keras_attdef.cli import evaluate, experiments, train
from keras_attdef.results.provenance import portable_command  # importing it reads the commit the run loads

GROUPS = (train, evaluate, experiments)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (each group module's `add_parsers`)."""
    parser = argparse.ArgumentParser(prog="keras-attdef", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv=None) -> int:
    """Runs one subcommand; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = portable_command(argv)  # what the provenance of a result records
    outcome = args.func(args)
    return outcome if isinstance(outcome, int) else 0


if __name__ == "__main__":
    sys.exit(main())
