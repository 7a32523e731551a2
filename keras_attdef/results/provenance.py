"""Where a figure came from: commit, command, seed, package versions, machine and date.

Example:

>>> p = provenance("keras-attdef train --defense madry", seed=0)
>>> sorted(p)[:4]
['command', 'commit', 'created', 'dirty']
"""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("keras_attdef", "tensorflow", "keras", "numpy")
_REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_versions(names=PACKAGES) -> dict:
    """`{package: version}` of the installed packages (None for one that is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict:
    """The CPU model and count, the OS and the GPUs TensorFlow sees (when TensorFlow is already imported)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    if "tensorflow" in sys.modules:
        gpus = [d.name for d in sys.modules["tensorflow"].config.list_physical_devices("GPU")]
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "os": platform.platform(), "python": platform.python_version(),
            "gpus": gpus}


def _checkout() -> tuple:
    """`(commit, package tree, dirty)`: HEAD, the package's tree at HEAD, whether it has uncommitted changes."""
    return (_git("rev-parse", "HEAD") or "unknown", _git("rev-parse", "HEAD:keras_attdef"),
            bool(_git("status", "--porcelain", "--", "keras_attdef")))


# Read when the package is imported: the code a long run executes is what it loaded then, whatever is
# committed while it runs (a record written an hour later must not name a commit it never ran).
_LOADED = _checkout()


def running_commit() -> str:
    """The commit of the code this process runs (HEAD when the package was imported; "unknown" outside git)."""
    return _LOADED[0]


def portable_command(argv: list[str], program: str = "keras-attdef") -> str:
    """The command line as a user would type it from the root of the checkout each path lies in.

    An absolute path inside a git checkout (a worktree's, or `--out /home/me/repo/runs/x`) is written
    relative to that checkout's root, so a record's command reruns on another machine; other arguments,
    and paths outside any checkout, are kept as typed.

    Example:

    >>> portable_command(["train", "--out", str(_REPO / "runs" / "x"), "--data-dir", "/no/such/dir"])
    'keras-attdef train --out runs/x --data-dir /no/such/dir'
    """
    def portable(argument: str) -> str:
        option, equals, value = argument.rpartition("=") if argument.startswith("--") else ("", "", argument)
        if not value.startswith("/"):
            return argument
        path = Path(value)
        root = next((d for d in (path, *path.parents) if (d / ".git").exists()), None)
        return option + equals + (path.relative_to(root).as_posix() or "." if root else value)

    return shlex.join([program, *map(portable, argv)])


def provenance(command: str, seed: int | None, **extra) -> dict:
    """The provenance block of a result record.

    Args:
        command: the command that made the figures, as a user would type it.
        seed: the seed of weights, shuffling and attacks.
        **extra: further entries (e.g. `imported_from`).

    Returns:
        `commit` (the checkout's HEAD when this process imported the package, or "unknown" outside a git
        checkout), `dirty` (the package had uncommitted changes then, or its sources have changed since), `command`,
        `seed`, `packages`, `machine` and `created` (UTC, ISO 8601).
    """
    commit, tree, dirty = _LOADED
    _, tree_now, dirty_now = _checkout()
    dirty = dirty or dirty_now or tree_now != tree  # the package's sources changed under the run: say so
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return {"commit": commit, "dirty": dirty, "command": command, "seed": seed, "packages": package_versions(),
            "machine": machine(), "created": created, **extra}
