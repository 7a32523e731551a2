"""Contracts that follow the registries: layers, attacks, defences, presets (nothing here lists them by hand)."""
import ast
import csv
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras
import preset_losses  # tests/preset_losses.py: the pinned one-step logs
from keras_attdef import RobustModel, attacks, cli, defenses, models
from keras_attdef.defenses import PRESETS, registered_defenses

PACKAGE = Path(__file__).resolve().parents[1] / "keras_attdef"

# Imports point down only (the layers of the README's "What is inside"): a module may import its own layer or a lower one.
LAYERS = {
    "backend": 0, "cpu": 0, "tables": 0, "flow": 0, "losses": 0, "datasets": 0, "models": 0, "results": 0,
    "distribute": 0, "inputs": 0,
    "attention": 1,
    "attacks": 2, "certify": 2,
    "defenses": 3,
    "robust_model": 4, "callbacks": 4,
    "evaluation": 5, "analysis": 5, "detect": 5,
    "experiments": 6,
    "cli": 7,
}


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _root_exports() -> dict:
    """`from keras_attdef import X`: X's defining subpackage, read off the package's __init__."""
    exports = {}
    for node in ast.walk(ast.parse((PACKAGE / "__init__.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_attdef"):
            for alias in node.names:
                exports[alias.asname or alias.name] = (
                    _top(node.module) if node.module != "keras_attdef" else alias.name)
    return exports


def _imports(path: Path):
    exports = _root_exports()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_attdef"):
            if node.module == "keras_attdef":
                yield from (exports.get(alias.name, alias.name) for alias in node.names)
            else:
                yield _top(node.module)
        elif isinstance(node, ast.Import):
            yield from (_top(a.name) for a in node.names if a.name.startswith("keras_attdef."))


def test_imports_point_down_only():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]
    assert len(modules) > 30
    violations = []
    for path in modules:
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0].removesuffix(".py")
        assert own in LAYERS, f"{relative}: give its package a layer in LAYERS"
        for target in _imports(path):
            if target in LAYERS and LAYERS[target] > LAYERS[own]:
                violations.append(f"{relative} imports {target} (layer {LAYERS[target]} > {LAYERS[own]})")
    assert not violations, violations


def test_the_layering_test_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from keras_attdef.robust_model import RobustModel\nfrom keras_attdef import evaluate_robustness\n")
    assert set(_imports(bad)) == {"robust_model", "evaluation"}


# -- attacks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", attacks.registered())
def test_every_registered_attack_stays_in_its_ball_and_range(name, tiny_batch):
    net = models.lenet(dropout=0)
    x, y = tiny_batch
    parameters = inspect.signature(attacks.get(name)).parameters
    takes_norm = "norm" in parameters
    cheap = {k: v for k, v in {"steps": 3, "queries": 20, "num_targets": 2, "search_steps": 1,
                                "gamma": 0.02}.items() if k in parameters}
    if "eps" not in parameters:  # minimal-perturbation attacks (C&W, JSMA): no ball, only the range
        x_adv = np.asarray(attacks.AttackSpec(name, **cheap)(net, x, y))
        assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0, name
        return
    for norm, eps in [("linf", 0.1)] + ([("l2", 1.0)] if takes_norm else []):
        kwargs = {"norm": norm, **cheap} if takes_norm else dict(cheap)
        x_adv = np.asarray(attacks.AttackSpec(name, eps=eps, **kwargs)(net, x, y))
        delta = (x_adv - x).reshape(len(x), -1)
        size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
        assert size.max() <= eps * (1 + 1e-5) + 1e-6, (name, norm)
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, name


# -- models -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_registered_model_builds_and_returns_class_logits(name):
    net = models.get(name)()
    batch = np.zeros((2, *net.input_shape[1:]), "float32")
    assert tuple(net(batch).shape) == (2, 10)


# -- defences -----------------------------------------------------------------------------------------
def _build(preset, teacher):
    return preset.from_options(eps=0.2, steps=2, step_size=0.1, warmup_steps=3, teacher=teacher)


def _base_for(preset):
    return models.two_layer_dense(8) if preset.model == "two_layer_dense" else models.lenet()


def test_every_registered_defence_has_a_preset():
    teacher = models.lenet(name="teacher")
    built = {type(_build(p, teacher)).__name__ for p in PRESETS.values()}
    assert {cls.__name__ for cls in registered_defenses().values()} <= built


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json_and_a_keras_file(name, tmp_path):
    preset = PRESETS[name]
    defense = _build(preset, models.lenet(name="teacher"))
    as_json = lambda d: json.loads(json.dumps(defenses.serialize(d)))  # noqa: E731  (tuples become lists)
    config = as_json(defense)
    assert as_json(defenses.deserialize(config)) == config
    robust = RobustModel(_base_for(preset), defense=defense)
    robust.compile(optimizer="adam")
    robust.save(tmp_path / f"{name}.keras")
    loaded = keras.models.load_model(tmp_path / f"{name}.keras")
    assert as_json(loaded.defense) == config


@pytest.mark.parametrize("cls", sorted(registered_defenses().values(), key=lambda c: c.name), ids=lambda c: c.name)
def test_loss_term_weights_merge_with_their_defaults(cls):
    if len(cls.default_weights) < 2:
        pytest.skip("fewer than two terms")
    first, *others = sorted(cls.default_weights)
    preset = next(p for p in PRESETS.values() if type(_build(p, models.lenet())) is cls)
    defense = _build(preset, models.lenet())
    config = defense.get_config()
    config["weights"] = {first: 0.123}
    merged = cls.from_config(config).weights
    assert merged[first] == 0.123
    assert all(merged[k] == cls.default_weights[k] for k in others), merged


# -- presets from the command line --------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    preset_losses.seeded_teacher(path)
    return path


def _attack_budgets(config):
    """Every eps-like number a serialised defence holds (attack eps, AAD's total, certified radius)."""
    cfg = config["config"]
    if "total_eps" in cfg:  # AAD: the rounds' budget around x (StepLL rounds take a share each)
        return [cfg["total_eps"]]
    return ([cfg["attack"]["eps"]] if cfg.get("attack") else []) + ([cfg["radius"]] if "radius" in cfg else [])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_one_step_from_the_cli_with_its_flags(name, tmp_path, teacher_path):
    preset = PRESETS[name]
    assert cli.main(preset_losses.cli_args(name, preset.options, tmp_path, teacher_path)) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    config = result["config"]
    if name != "plain":
        assert _attack_budgets(config) and all(b == pytest.approx(0.1) for b in _attack_budgets(config)), config
    if "steps" in preset.options:
        assert config["config"]["attack"]["steps"] == 2
        assert config["config"]["attack"]["step_size"] == pytest.approx(2.5 * 0.1 / 2)
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert int(loaded.optimizer.iterations) == 1
    with open(tmp_path / "history.csv") as handle:
        logged = set(next(csv.reader(handle)))
    assert {f"{term}_loss" for term in loaded.defense.term_names} | {"loss", "accuracy"} <= logged
    if loaded.defense.attack is not None:
        assert "adv_accuracy" in logged
    # Behaviour kept through the refactors: the same seeds log the same losses as before them.
    pinned = json.loads(preset_losses.PINNED.read_text())
    if name in pinned["logs"]:
        now = preset_losses.logged(tmp_path)
        for key, value in pinned["logs"][name].items():
            assert now[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (key, pinned["commit"])


def test_cli_refuses_flags_a_preset_does_not_take(tmp_path):
    with pytest.raises(SystemExit, match="--defense fast does not take --attack-steps"):
        cli.main(["train", "--defense", "fast", "--attack-steps", "3", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="needs --teacher"):
        cli.main(["train", "--defense", "atat", "--out", str(tmp_path), "--train-limit", "8", "--eval-size", "0"])


def test_warning_when_training_on_a_cpu_with_onednn_off(monkeypatch):
    from keras_attdef import cpu

    monkeypatch.setattr(cpu, "_warned", False)
    monkeypatch.setattr(cpu, "onednn_enabled", lambda: False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with pytest.warns(RuntimeWarning, match="TF_ENABLE_ONEDNN_OPTS=1"):
        RobustModel(models.lenet(), defense="plain").compile(optimizer="adam")
    assert not cpu.warn_if_onednn_off()  # once per process
    monkeypatch.setattr(cpu, "_warned", False)
    monkeypatch.setattr(cpu, "onednn_enabled", lambda: True)
    assert not cpu.warn_if_onednn_off()


def test_onednn_state_is_read_from_tensorflow():
    from keras_attdef import cpu

    # conftest sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow starts; TensorFlow must report it on.
    assert cpu.onednn_enabled() in (True, None)
    assert tf.config.list_physical_devices("CPU")
