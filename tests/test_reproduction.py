"""The reproduction protocol and the per-epoch resumable trainer."""
import json

import numpy as np
import pytest

from keras_attdef import datasets, models
from keras_attdef.evaluation.suites import paper_attacks
from keras_attdef.experiments.reproduction import PAPER_COLUMNS, Protocol, preset_defense, reproduction_table
from keras_attdef.experiments import reproduction
from keras_attdef.experiments.training import train_resumable


def test_every_pgd_preset_gets_the_protocols_attack():
    protocol = Protocol()
    for name in ("madry", "trades", "alp", "at_alp", "aad_pgd"):
        attack = preset_defense(name, protocol, steps_per_epoch=600).attack.get_config()
        assert (attack["eps"], attack["steps"], attack["step_size"]) == (0.3, 40, 0.01), name
    aad = preset_defense("aad", protocol, 600)
    assert aad.attack.name == "step_ll" and abs(aad.attack.get_config()["eps"] - 0.15) < 1e-12  # two rounds
    fast = preset_defense("fast", protocol, 600).attack.get_config()  # not the PGD step: Wong et al.'s 1.25 eps
    assert (fast["steps"], fast["random_start"]) == (1, True) and abs(fast["step_size"] - 0.375) < 1e-12
    ramped = preset_defense("madry", Protocol(warmup_epochs=0.5), 600)
    assert ramped.warmup_steps == 300
    assert list(paper_attacks()) == list(PAPER_COLUMNS[1:])


def test_training_resumes_per_epoch_and_stops_at_the_time_limit(tmp_path):
    x, y = np.random.default_rng(0).random((40, 28, 28, 1), np.float32), np.arange(40) % 10
    build = lambda: models.lenet(dropout=0)  # noqa: E731
    _, first = train_resumable(tmp_path / "a", build, "plain", x, y, epochs=1, batch_size=20, verbose=0)
    assert first["epochs_done"] == 1 and len(first["epoch_seconds"]) == 1
    model, progress = train_resumable(tmp_path / "a", build, "plain", x, y, epochs=2, batch_size=20, verbose=0)
    assert progress["epochs_done"] == 2 and int(model.optimizer.iterations) == 4  # optimizer state carried over
    assert progress["run_id"] == first["run_id"]  # the same model: its stored figures stay valid
    snapshot = build()
    snapshot.load_weights(tmp_path / "a" / "epoch_2.weights.h5")  # the classifier after each epoch
    np.testing.assert_allclose(snapshot.predict(x, verbose=0), model.base_model.predict(x, verbose=0), atol=1e-5)
    assert (tmp_path / "a" / "epoch_1.weights.h5").exists()
    _, limited = train_resumable(tmp_path / "b", build, "plain", x, y, epochs=3, batch_size=20, time_limit=0,
                                 verbose=0)
    assert limited["epochs_done"] == 1 and "limit" in limited["stopped"]
    _, finished = train_resumable(tmp_path / "c", build, "plain", x, y, epochs=1, batch_size=20, time_limit=0,
                                  verbose=0)
    assert finished["epochs_done"] == 1 and finished["stopped"] is None  # nothing left to stop


def test_table_states_unfinished_epochs_and_the_papers_figures():
    result = {"training": {"epochs_done": 3, "seconds": 600.0},
              "paper": {"clean": 0.99, **{c: 0.5 for c in PAPER_COLUMNS[1:]}},
              "suite": {"accuracy": {"worst case": 0.4}, "raised": []},
              "attention_shift": {"succeeded": {"10": 0.3}, "failed": {"10": 0.7}}}
    table = reproduction_table({"madry": result}, Protocol())
    assert "3 of 5 (time limit)" in table and "(98.61%)" in table and "40.00%" in table and "0.300 / 0.700" in table
    assert "| 10.0 |" in table  # PGD-100 (50%) over the worst case (40%), in points


def test_results_of_a_retrained_model_are_dropped_not_reused(tmp_path):
    from keras_attdef.experiments.store import ResultStore

    store = ResultStore(tmp_path / "results.json", verbose=False)
    store.bind("madry", "run-1")
    store.put("madry/suite", 0.8)
    store.put("plain/suite", 0.0)
    store.bind("madry", "run-1")  # same model: kept
    assert ResultStore(tmp_path / "results.json").get("madry/suite", lambda: None) == 0.8
    store.bind("madry", "run-2")  # retrained (its checkpoint was lost): its figures go, the others stay
    reloaded = ResultStore(tmp_path / "results.json")
    assert "madry/suite" not in reloaded and reloaded.get("plain/suite", lambda: None) == 0.0


def test_training_killed_mid_epoch_resumes_at_the_next_batch(tmp_path, monkeypatch):
    from keras_attdef.experiments import training

    x, y = np.random.default_rng(0).random((40, 28, 28, 1), np.float32), np.arange(40) % 10
    build = lambda: models.lenet(dropout=0)  # noqa: E731
    save_at_batch_end = training._Checkpoint.on_train_batch_end

    def killed_after_two_batches(self, batch, logs=None):
        save_at_batch_end(self, batch, logs)
        if self.progress["batches_done"] == 2:
            raise KeyboardInterrupt  # the session ends here, just after a mid-epoch checkpoint

    monkeypatch.setattr(training._Checkpoint, "on_train_batch_end", killed_after_two_batches)
    try:
        train_resumable(tmp_path, build, "plain", x, y, epochs=2, batch_size=10, verbose=0, checkpoint_seconds=0)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    stopped = training.json.loads((tmp_path / "progress.json").read_text())
    assert (stopped["epochs_done"], stopped["batches_done"]) == (0, 2)
    model, progress = train_resumable(tmp_path, build, "plain", x, y, epochs=2, batch_size=10, verbose=0)
    assert progress["epochs_done"] == 2 and progress["batches_done"] == 0 and len(progress["epoch_seconds"]) == 2
    assert int(model.optimizer.iterations) == 8  # 2 before the kill + 2 after + 4: no batch trained twice or skipped


def test_ablation_changes_one_term_per_variant_and_tabulates_each(tmp_path):
    from keras_attdef.experiments.ablation import FAMILIES, VARIANTS, ablate, variant_builder, variant_defense
    from keras_attdef.results import load_experiments

    paper = variant_defense("aad_pgd", 0.3, 3, 10)
    assert (paper.weights, paper.rounds, paper.kappa, paper.task_weight) == ({"rect": 1.0, "pres": 2.0}, 2, "mean", 2.0)
    assert variant_defense("no_attention", 0.3, 3, 10).weights == {"rect": 0.0, "pres": 0.0}
    assert variant_defense("one_round", 0.3, 3, 10).rounds == 1
    assert variant_defense("aad_step_ll", 0.3, 3, 10).attack.name == "step_ll"
    assert variant_defense("madry", 0.3, 3, 10).attack.get_config()["steps"] == 3
    assert variant_defense("clean_and_adv", 0.3, 3, 10).weights == {"pair": 0.0}
    assert variant_defense("at_alp_no_pair", 0.3, 3, 10).weights == {"attention": 1.0, "pair": 0.0}
    assert variant_defense("attn_trades_ig", 0.3, 3, 10).method == "integrated_gradients"
    with pytest.raises(ValueError, match="Unknown variant"):
        variant_defense("no_such_thing", 0.3, 3, 10)
    with pytest.raises(ValueError, match="needs the trained 'plain' variant"):
        variant_defense("atat", 0.3, 3, 10)
    teacher = models.small_lenet()
    student = variant_builder("atat_robust_init", "small_lenet", {"madry": teacher})()
    assert student is not teacher and all(np.array_equal(a, b) for a, b in zip(student.get_weights(),
                                                                               teacher.get_weights()))
    assert variant_defense("atat_robust_init", 0.3, 3, 10, {"madry": teacher}).teacher is teacher
    fresh = variant_builder("atat_robust_teacher", "small_lenet", {"madry": teacher})()
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), teacher.get_weights()))
    for family in FAMILIES.values():  # every ATAT variant's teacher comes before it
        assert all(VARIANTS[v][2].get("teacher", family[0]) in family[:i] or VARIANTS[v][1] != "atat"
                   for i, v in enumerate(family))
    table = ablate(tmp_path, ("plain", "madry", "atat_no_pair"), epochs=1, steps=1, train_size=200, eval_size=10,
                   verbose=0)
    assert table.count("\n| ") >= 4 and VARIANTS["atat_no_pair"][0] in table and "empty maps" in table
    assert (tmp_path / "madry" / "epoch_1.weights.h5").exists() and (tmp_path / "table.md").exists()
    for checkpoint in tmp_path.glob("*/checkpoint.keras"):
        checkpoint.unlink()  # a new checkout: results but no models; nothing is trained again
    meta, records = load_experiments(tmp_path / "results")["ablation"]
    made = {r["model"]: r["provenance"] for r in records}
    # without the adaptive stages the cascade's per-point outcomes still pair every variant with madry
    assert meta["columns"][-1] == "p vs madry" and "p vs trades" not in meta["columns"]
    assert all(0.0 <= r["metrics"]["p vs madry"] <= 1.0 for r in records if r["model"] != "madry")
    again = ablate(tmp_path, ("plain", "madry", "atat_no_pair"), epochs=1, steps=1, train_size=200, eval_size=10,
                   verbose=0, command="keras-attdef ablate --publish again")
    assert again.rsplit("\n", 1)[0] == table.rsplit("\n", 1)[0]  # the same figures; the footer names the command
    # republishing keeps the provenance of the run that made the figures, not the republishing one's
    assert {r["model"]: r["provenance"] for r in load_experiments(tmp_path / "results")["ablation"][1]} == made
    store = json.loads((tmp_path / "results.json").read_text())  # a store from before per-variant provenance
    (tmp_path / "results.json").write_text(json.dumps({k: v for k, v in store.items() if "/provenance" not in k}))
    ablate(tmp_path, ("plain", "madry", "atat_no_pair"), epochs=1, steps=1, train_size=200, eval_size=10,
           verbose=0, command="keras-attdef ablate --publish third")
    assert {r["model"]: r["provenance"] for r in load_experiments(tmp_path / "results")["ablation"][1]} == made
    assert not list(tmp_path.glob("*/checkpoint.keras"))


def test_attention_family_adds_the_adaptive_attack_iou_and_paired_tests(tmp_path):
    from keras_attdef.experiments.ablation import ablate
    from keras_attdef.results import load_experiments

    table = ablate(tmp_path, ("madry", "trades", "attn_trades_cam"), epochs=1, steps=2, train_size=200, eval_size=20,
                   verbose=0, experiment="ablate_attention")
    assert "map-adaptive PGD-50" in table and "p vs trades" in table
    meta, records = load_experiments(tmp_path / "results")["ablate_attention"]
    by_name = {r["model"]: r for r in records}
    cam = by_name["attn_trades_cam"]
    assert cam["training"]["architecture"] == "small_cam_lenet" and by_name["madry"]["training"]["architecture"] == "small_lenet"
    for record in records:
        accuracy = record["accuracy"]
        assert accuracy["worst case"] <= min(accuracy["cascade worst case"], accuracy["map-adaptive PGD-50"])
        assert len(record["metrics"]["worst case per point"]) == 20
    assert 0.0 <= cam["metrics"]["p vs madry"] <= 1.0 and "p vs madry" not in by_name["madry"]["metrics"]


def test_empty_map_share_sees_a_network_whose_grad_cam_is_zero():
    from keras_attdef.experiments.ablation import empty_map_share

    x, y = np.random.default_rng(0).random((8, 28, 28, 1), np.float32), np.arange(8) % 10
    net = models.lenet(dropout=0)
    assert empty_map_share(net, x, y) < 1.0
    kernel, bias = net.get_layer("conv2").get_weights()
    net.get_layer("conv2").set_weights([0 * kernel, 0 * bias])  # no features: every map is zero
    assert empty_map_share(net, x, y) == 1.0 and empty_map_share(net, x, y, method="grad_x_activation") == 1.0
    assert empty_map_share(net, x, y, method="integrated_gradients") == 1.0


def test_a_finished_preset_is_not_retrained_in_a_new_checkout(tmp_path, monkeypatch):
    import json

    from keras_attdef.experiments.store import ResultStore

    training = {"epochs_done": 5, "batches_done": 0, "seconds": 60.0, "epoch_seconds": [12.0] * 5, "logs": [],
                "stopped": None, "run_id": "run-1"}
    (tmp_path / "madry").mkdir()
    (tmp_path / "madry" / "progress.json").write_text(json.dumps(training))  # no checkpoint.keras: a new checkout
    store = ResultStore(tmp_path / "results.json", verbose=False)
    store.bind("madry", "run-1")
    store.put("madry/paper_columns", {"clean": 0.98, **{c: 0.5 for c in PAPER_COLUMNS[1:]}})
    store.put("madry/suite", {"accuracy": {"worst case": 0.41, "APGD-CE": 0.5, "APGD-T": 0.45, "FAB-T": 0.5,
                                           "Square": 0.5}, "raised": [], "num_examples": 10, "eps": 0.3, "norm": "linf"})
    assert reproduction.finished_results(store, tmp_path, "madry") is None  # a stage is missing
    store.put("madry/attention_shift", {"succeeded": {"10": 0.3}, "failed": {"10": 0.7}})
    assert reproduction.finished_results(store, tmp_path, "madry")["suite"]["accuracy"]["worst case"] == 0.41
    store.bind("madry", "run-2")  # results of another run do not count
    assert reproduction.finished_results(store, tmp_path, "madry") is None
    store.bind("madry", "run-1")
    store.put("madry/paper_columns", {"clean": 0.98, **{c: 0.5 for c in PAPER_COLUMNS[1:]}})
    store.put("madry/suite", {"accuracy": {"worst case": 0.41, "APGD-CE": 0.5, "APGD-T": 0.45, "FAB-T": 0.5,
                                           "Square": 0.5}, "raised": [], "num_examples": 10, "eps": 0.3, "norm": "linf"})
    store.put("madry/attention_shift", {"succeeded": {"10": 0.3}, "failed": {"10": 0.7}})

    def no_training(*args, **kwargs):
        raise AssertionError("a finished preset was trained again")

    monkeypatch.setattr(reproduction, "train_resumable", no_training)
    table = reproduction.reproduce_mnist(tmp_path, ["madry"], Protocol(train_size=20, eval_size=10))
    assert "41.00%" in table and (tmp_path / "table.md").read_text().strip() == table.strip()


def test_atat_student_starts_from_its_teacher_and_the_others_from_scratch():
    protocol = Protocol()
    teacher = reproduction.student_model("plain", protocol)
    student = reproduction.student_model("atat", protocol, teacher)
    fresh = reproduction.student_model("madry", protocol, teacher)
    for theirs, ours, other in zip(teacher.get_weights(), student.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(theirs, ours)
    assert any(not np.array_equal(t, o) for t, o in zip(teacher.get_weights(), fresh.get_weights()))
    with pytest.raises(ValueError, match="teacher"):
        reproduction.student_model("atat", protocol)


def test_ablation_runs_on_the_cifar10_split_and_says_so(tmp_path):
    from keras_attdef.experiments.ablation import ablate
    from keras_attdef.results import load_experiments

    try:
        datasets.load("cifar10", "test", limit=1)
    except (FileNotFoundError, ValueError) as error:
        pytest.skip(f"no offline CIFAR-10 copy: {error}")
    ablate(tmp_path, ("attn_madry",), model="cifarnet", dataset="cifar10", eps=8 / 255, epochs=1, steps=1,
           train_size=64, eval_size=8, verbose=0, experiment="ablate_attention_cifar", adaptive=True)
    meta, (record,) = load_experiments(tmp_path / "results")["ablate_attention_cifar"]
    assert record["dataset"] == "cifar10" and record["training"]["architecture"] == "cifarnet"
    assert record["threat"]["eps"] == pytest.approx(8 / 255) and record["n"] == 8
    assert "not the official training set" in meta["protocol"] and "StepLL-0.0157" in meta["protocol"]
    assert not any(column.startswith("p vs") for column in meta["columns"])  # no madry / trades run beside it
