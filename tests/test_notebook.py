import ast
import json
from pathlib import Path

import keras_attdef as kad

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "colab").glob("*.ipynb"))


def test_notebook_cells_parse_and_use_the_public_api():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join(
            line for cell in cells if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith("!")
        )
        tree = ast.parse(code)
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id == "kad"}
        assert used and all(hasattr(kad, name) for name in used), (path, used)
