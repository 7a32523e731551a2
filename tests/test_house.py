"""The API traps a newcomer fell into (issue 31), each with a test that failed before its fix."""
import ast
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import keras_attdef as kad
from keras_attdef import defenses, evaluation, models
from keras_attdef.attacks import default_step_size
from keras_attdef.defenses import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def _attack(defense):
    return defense.get_config()["attack"]


@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if "steps" in p.options and "teacher" not in p.options))
def test_lowering_steps_keeps_an_attack_that_crosses_the_ball(name):
    attack = _attack(PRESETS[name].build(eps=0.3, steps=7))
    assert attack["step_size"] == pytest.approx(default_step_size(0.3, 7))  # was 0.01: 7 steps moved 0.07 of 0.3
    assert attack["step_size"] * attack["steps"] >= 2 * 0.3


def test_atat_step_scales_with_steps_too():
    teacher = models.lenet(name="teacher")
    assert _attack(defenses.atat(teacher, eps=0.3, steps=7))["step_size"] == pytest.approx(default_step_size(0.3, 7))


def test_the_papers_fixed_step_is_kept_when_asked_for():
    assert _attack(defenses.madry(step_size=0.01, steps=40)) == {"name": "pgd", "eps": 0.3, "step_size": 0.01,
                                                                 "steps": 40, "random_start": True}


def test_the_pgd_table_step_scales_with_eps():
    table = evaluation.pgd_table(8 / 255)
    pgd40 = next(spec for name, spec in table.items() if name.startswith("PGD-40"))
    assert pgd40.kwargs["step_size"] == pytest.approx(default_step_size(8 / 255, 40))  # was 0.01 at any eps


def test_strong_evaluation_is_at_the_package_root():
    assert kad.evaluate is evaluation.evaluate and kad.autoattack is evaluation.autoattack
    assert {"evaluate", "autoattack"} <= set(kad.__all__)
    quickstart = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "kad.evaluate(" in quickstart and "evaluate_robustness" not in quickstart


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_another_keras_backend_is_a_clear_error(backend, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=backend, KERAS_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", "import keras_attdef"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "KERAS_BACKEND=tensorflow" in done.stderr and "No module named" not in done.stderr


def test_the_backend_is_read_from_keras_json_too(tmp_path, monkeypatch):
    from keras_attdef import backend

    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras is imported
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    with pytest.raises(ImportError, match="KERAS_BACKEND=tensorflow"):
        backend.require_tensorflow_backend()
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    backend.require_tensorflow_backend()


def test_license_is_apache_and_declared():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    setup = ast.parse((ROOT / "setup.py").read_text())
    keywords = {k.arg: k.value for n in ast.walk(setup) if isinstance(n, ast.Call) for k in n.keywords}
    assert ast.literal_eval(keywords["license"]) == "Apache-2.0"
    info = metadata.metadata("keras_attdef")
    assert "Apache-2.0" in (info.get("License-Expression") or info.get("License") or "")


def test_nothing_points_outside_the_repository():
    files = [ROOT / "README.md", *ROOT.glob("tests/*.py"), *ROOT.glob("keras_attdef/**/*.py"),
             *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("colab/*.ipynb")]
    outside = re.compile(r"\.\./shared|shared/(data|papers)")
    hits = [f"{f.relative_to(ROOT)}: {m.group(0)}" for f in files if f != Path(__file__)
            for m in [outside.search(f.read_text())] if m]
    assert not hits, hits


def test_the_detector_keeps_keras_fit_contract(mnist_train):
    import keras

    from keras_attdef import detect

    x, y = mnist_train[0][:64], mnist_train[1][:64]
    detector = detect.LatentAttentionDetector(models.lenet())
    history = detector.fit(x, y, 32, 1, 0)  # Keras's positional order: x, y, batch_size, epochs, verbose
    assert isinstance(history, keras.callbacks.History) and detector.fitted
    assert len(history.history["generator_loss"]) == 1 and len(history.history["mask_loss"]) == 1
    with pytest.raises(TypeError, match="validation_split"):
        detector.fit(x, y, validation_split=0.1)


def test_inputs_are_checked_in_one_module():
    """One input-validation module: no other module writes its own range or label check."""
    own_checks = re.compile(r"must lie in \[|contain NaN|def check_(images|labels|range|inputs)\b")
    hits = [str(f.relative_to(ROOT)) for f in ROOT.glob("keras_attdef/**/*.py")
            if f.name != "inputs.py" and own_checks.search(f.read_text())]
    assert not hits, f"input checks outside keras_attdef/inputs.py: {hits}"


def test_fractional_labels_are_refused_not_rounded():
    import numpy as np

    from keras_attdef import attacks

    x = np.zeros((2, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="integer class indices"):
        attacks.fgsm(models.lenet(), x, np.array([0.4, 2.6]), 0.1)
    with pytest.raises(ValueError, match="integer class indices"):
        evaluation.autoattack(models.lenet(), x, np.array([0.4, 2.6]), eps=0.1, progress=False)


def test_no_function_in_the_package_is_longer_than_80_lines():
    long = []
    for path in ROOT.glob("keras_attdef/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, f"split these (docstring included): {long}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"\*\*Tests\*\*.*?```bash\n(.+?)\n```", readme, re.S).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()
