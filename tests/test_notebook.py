"""The Colab notebooks: their code uses the public API, and each runs end to end on a small budget."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras_attdef as kad

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "colab").glob("*.ipynb"))


def notebook_code(path: Path) -> str:
    """The code cells as one script; shell lines (`!pip ...`) dropped."""
    cells = json.loads(path.read_text())["cells"]
    return "\n".join(
        line for cell in cells if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith("!")
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_parse_and_use_the_public_api(path):
    tree = ast.parse(notebook_code(path))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "kad"}
    assert used and all(hasattr(kad, name) for name in used), (path, used)


# One notebook runs end to end (the library's main use: an attention defence trained, evaluated and drawn);
# the others are checked above against the public API, and their code paths by the library's own tests.
EXECUTED = "attention_defences"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem == EXECUTED], ids=lambda p: p.stem)
def test_notebook_runs_on_a_small_budget(path, tmp_path):
    env = {**os.environ, "KERAS_ATTDEF_QUICK": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", notebook_code(path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
