"""Several machines, simulated by two worker processes on loopback ports: the same weights as one process,
and a killed worker resumed from its backup. Each worker stops by itself (the survivor of a kill detects the
missing heartbeats in about ten seconds); every process is killed after `TIMEOUT` seconds whatever happens."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_attdef import distribute

JOB = Path(__file__).with_name("multi_worker_job.py")
TIMEOUT = 180


def _launch(tmp_path, defense="madry", backup=None, die_at_epoch=None, extra=()):
    """Runs both workers to the end; returns their exit codes."""
    ports = ",".join(w.split(":")[1] for w in distribute.local_cluster(2)[0]["cluster"]["worker"])
    processes = []
    for index in (0, 1):
        command = [sys.executable, str(JOB), "--index", str(index), "--ports", ports, "--defense", defense,
                   "--out", str(tmp_path / "out"), *extra]
        command += ["--backup", str(backup)] if backup else []
        command += ["--die-at-epoch", str(die_at_epoch)] if die_at_epoch is not None and index == 1 else []
        log = open(tmp_path / f"worker-{index}.log", "w")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=TIMEOUT))
        except subprocess.TimeoutExpired:
            process.kill()  # SIGKILL: TensorFlow's multi-worker runtime catches SIGTERM for preemption
            codes.append("timeout")
    return codes


def _worker_result(tmp_path, index):
    arrays = np.load(tmp_path / "out" / f"worker-{index}.npz")
    weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    return weights, json.loads((tmp_path / "out" / f"worker-{index}.json").read_text())


@pytest.fixture(scope="module")
def one_process(mirrored_strategy):
    """The same training under MirroredStrategy over two logical CPUs of this process, per defence."""
    sys.path.insert(0, str(JOB.parent))
    import multi_worker_job

    return {name: multi_worker_job.train(mirrored_strategy, name) for name in ("madry", "attention")}


def _assert_same_training(tmp_path, reference):
    weights, history = reference
    for index in (0, 1):
        worker_weights, record = _worker_result(tmp_path, index)
        for ours, theirs in zip(worker_weights, weights):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
        for name, values in record["history"].items():
            np.testing.assert_allclose(values, history[name][-len(values):], rtol=1e-4, err_msg=name)
    return _worker_result(tmp_path, 0)[1]


@pytest.mark.parametrize("defense", ["madry", "attention"])
def test_two_workers_train_as_one_process_with_two_replicas(defense, one_process, tmp_path):
    """Same global batches and seeds: per-replica loss scaling, the eps ramp (optimizer.iterations), the
    all-reduced gradients and the logged metrics all agree with MirroredStrategy in one process."""
    assert _launch(tmp_path, defense) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    record = _assert_same_training(tmp_path, one_process[defense])
    assert record["epochs_run"] == [0, 1, 2]


def test_a_killed_worker_resumes_from_the_last_epoch_with_the_same_result(one_process, tmp_path):
    backup = tmp_path / "backup"
    codes = _launch(tmp_path, backup=backup, die_at_epoch=1)
    assert codes[1] == 17, "worker 1 should have died mid-epoch 2"
    assert codes[0] not in (0, "timeout"), "the survivor should stop by itself with an error"
    assert sorted(p.name for p in backup.iterdir()) == ["worker-0", "worker-1"]
    assert json.loads((backup / "worker-0" / "state.json").read_text())["epoch"] == 1

    assert _launch(tmp_path, backup=backup) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    record = _assert_same_training(tmp_path, one_process["madry"])
    assert record["epochs_run"] == [1, 2]  # the finished epoch is not repeated, the killed one is redone
    assert not backup.exists()  # removed once training finished


@pytest.mark.parametrize("config, message", [
    (None, "not set"),
    ("{not json", "not JSON"),
    (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "names no worker"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}), "from 0 to 1"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}), "task.type"),
])
def test_a_bad_tf_config_says_what_to_set(config, message):
    environ = {} if config is None else {"TF_CONFIG": config}
    with pytest.raises(ValueError, match=message):
        distribute.read_tf_config(environ)


def test_one_machine_is_left_alone():
    import tensorflow as tf

    assert not distribute.is_multi_worker(tf.distribute.get_strategy())
    assert distribute.worker_index() == 0
    with distribute.keras_fixes(tf.distribute.get_strategy()):
        pass
    assert "TF_CONFIG" not in os.environ


def test_every_preset_trains_on_two_workers_and_the_workers_agree(tmp_path):
    """Two steps of each preset (ATAT with its teacher, certified on its dense net): finite losses, and the
    two workers end with the same weights (their gradients were all-reduced, random starts notwithstanding)."""
    from keras_attdef.defenses import PRESETS

    assert _launch(tmp_path, extra=["--every-preset"]) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    first, second = (json.loads((tmp_path / "out" / f"presets-{i}.json").read_text()) for i in (0, 1))
    assert set(first) == set(PRESETS)
    assert first == second
    assert all(np.isfinite(loss) for _, loss in first.values())
