"""Pins what one CLI training step of every preset logs, so a refactor that changes behaviour shows.

`python tests/preset_losses.py [REPO]` runs `keras-attdef train` for one batch of 32 digits per preset (the
flags of `test_every_preset_trains_one_step_from_the_cli_with_its_flags`, a seeded teacher) with the
library found in REPO (default: this checkout) and writes `tests/data/preset_losses.json`. The committed
file was made at the commit it names, before issue 31's refactors; the test compares today's logs with it.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PINNED = Path(__file__).resolve().parent / "data" / "preset_losses.json"


def cli_args(name: str, options, out, teacher_path) -> list:
    args = ["train", "--defense", name, "--epochs", "1", "--train-limit", "32", "--batch-size", "32",
            "--eval-size", "0", "--eps", "0.1", "--out", str(out), "--verbose", "0"]
    if "steps" in options:
        args += ["--attack-steps", "2"]
    if "teacher" in options:
        args += ["--teacher", str(teacher_path)]
    return args


def seeded_teacher(path) -> None:
    """An untrained LeNet whose weights depend on nothing but the seed."""
    import keras

    from keras_attdef import models

    keras.utils.set_random_seed(0)
    models.lenet(name="teacher").save(path)


def logged(out) -> dict:
    """The first epoch's numbers from `history.csv`."""
    with open(Path(out) / "history.csv") as handle:
        row = next(csv.DictReader(handle))
    return {k: float(v) for k, v in row.items() if k != "epoch" and v not in ("", "NA")}


def main(repo: str) -> None:
    sys.path.insert(0, repo)
    from keras_attdef import cli
    from keras_attdef.defenses import PRESETS

    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.keras"
        seeded_teacher(teacher)
        logs = {}
        for name, preset in sorted(PRESETS.items()):
            out = Path(tmp) / name
            assert cli.main(cli_args(name, preset.options, out, teacher)) == 0
            logs[name] = logged(out)
    PINNED.write_text(json.dumps({"commit": commit, "command": f"python tests/preset_losses.py {repo}",
                                  "logs": logs}, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1]))
