"""`ResultStore`: a JSON file of finished stages, so that a stopped experiment resumes where it stopped."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable


class ResultStore:
    """`get(key, compute)` returns the stored result or computes, saves and returns it.

    Every result is written as soon as it exists (atomically: a killed run never leaves half a file), so
    a long experiment stopped at any point recomputes at most the stage it was in.

    Args:
        path: the JSON file (created with its folder if missing).
        verbose: print a line when a stored result is reused.

    Example:

    >>> import tempfile, pathlib
    >>> store = ResultStore(pathlib.Path(tempfile.mkdtemp()) / "results.json", verbose=False)
    >>> store.get("answer", lambda: 42), store.get("answer", lambda: 0)
    (42, 42)
    """

    def __init__(self, path, verbose: bool = True):
        self.path = Path(path)
        self.verbose = verbose
        self.data: dict = json.loads(self.path.read_text()) if self.path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, compute: Callable[[], Any]):
        if key in self.data:
            if self.verbose:
                print(f"[resume] {key}: from {self.path}")
            return self.data[key]
        return self.put(key, compute())

    def bind(self, prefix: str, run_id: str) -> None:
        """Drops the results under `prefix/` when they were computed for another run than `run_id`.

        Models are not kept with the results (a new checkout has the JSON, not the `.keras` files), so a
        retrained model gets a new id and its stale figures go instead of being reported as its own.
        """
        key = f"{prefix}/run_id"
        if self.data.get(key) != run_id:
            for stale in [k for k in self.data if k.startswith(prefix + "/")]:
                del self.data[stale]
            self.put(key, run_id)

    def finished(self, prefix: str, run_id: str | None, keys) -> dict | None:
        """`{key: result}` of `prefix/key` for every key when all are stored for run `run_id`, else None.

        A new checkout has the results but not the models: a stage set finished for the run whose progress
        is on disk needs neither the model nor the work again.
        """
        if run_id is None or self.data.get(f"{prefix}/run_id") != run_id:
            return None
        if not all(f"{prefix}/{key}" in self.data for key in keys):
            return None
        return {key: self.data[f"{prefix}/{key}"] for key in keys}

    def put(self, key: str, value):
        """Stores `value` under `key` and writes the file; returns `value`."""
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(self.path.suffix + ".partial")
        partial.write_text(json.dumps(self.data, indent=2))
        os.replace(partial, self.path)
        return value
