"""One worker of the multi-worker tests (tests/test_multi_worker.py), and the shared training recipe.

Run as `python tests/multi_worker_job.py --index I --ports P0,P1 --defense madry --out DIR`: it joins the
cluster on the loopback ports, trains, and writes `DIR/worker-I.npz` (final weights) and `.json` (logs,
epochs run). `--die-at-epoch E --die-at-batch B` makes it exit abruptly mid-epoch, as a killed machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

EPOCHS, STEPS_PER_EPOCH, GLOBAL_BATCH = 3, 4, 32


def defense(name: str):
    """Defences without random starts: the replicas of two set-ups draw different random numbers."""
    from keras_attdef import AttackSpec
    from keras_attdef.defenses import AdversarialTraining, AttentionRegularized

    attack = AttackSpec("pgd", eps=0.3, step_size=0.1, steps=3, random_start=False)
    if name == "plain":
        from keras_attdef.defenses import PlainTraining
        return PlainTraining()
    if name == "madry":
        return AdversarialTraining(attack, warmup_steps=6)  # the ramp follows optimizer.iterations
    if name == "attention":
        return AttentionRegularized(attack, {"attention": 1.0}, warmup_steps=6, base="madry")
    raise ValueError(name)


def dataset():
    import tensorflow as tf

    from keras_attdef import datasets

    x, y = datasets.load("mnist", "train", limit=GLOBAL_BATCH * STEPS_PER_EPOCH)
    return tf.data.Dataset.from_tensor_slices((x, y.astype("int32"))).batch(GLOBAL_BATCH)


def train(strategy, defense_name: str, callbacks=(), epochs: int = EPOCHS):
    """Builds, compiles and fits the test model under `strategy`; returns (weights, history)."""
    import keras

    from keras_attdef import RobustModel, models

    keras.utils.set_random_seed(0)
    with strategy.scope():
        robust = RobustModel(models.small_lenet(), defense=defense(defense_name))
        robust.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"])
    history = robust.fit(dataset(), epochs=epochs, verbose=0, callbacks=list(callbacks))
    return [w.numpy() for w in robust.base_model.weights], history.history


def every_preset(strategy) -> dict:
    """Two steps of every preset (ATAT with a teacher built in the scope): {preset: (weights digest, loss)}."""
    import hashlib

    import keras
    import numpy as np

    from keras_attdef import RobustModel, models
    from keras_attdef.defenses import PRESETS

    results = {}
    for name, preset in sorted(PRESETS.items()):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            teacher = models.small_lenet(name="teacher")
            defense = preset.from_options(eps=0.3, steps=2, step_size=0.15, teacher=teacher)
            base = models.get(preset.model)() if preset.model else models.small_lenet()
            robust = RobustModel(base, defense=defense)
            robust.compile(optimizer="adam")
        loss = robust.fit(dataset().take(2), epochs=1, verbose=0).history["loss"][-1]
        digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in base.weights)).hexdigest()
        results[name] = [digest, loss]
    return results


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--defense", default="madry")
    parser.add_argument("--out", required=True)
    parser.add_argument("--backup")
    parser.add_argument("--die-at-epoch", type=int)
    parser.add_argument("--die-at-batch", type=int, default=1)
    parser.add_argument("--every-preset", action="store_true", help="two steps of every preset instead")
    args = parser.parse_args(argv)
    workers = [f"localhost:{port}" for port in args.ports.split(",")]
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.index}})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from keras_attdef import callbacks as kad_callbacks
    from keras_attdef import distribute

    strategy = distribute.multi_worker_strategy(timeout_seconds=20)
    if args.every_preset:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"presets-{args.index}.json"), "w") as file:
            json.dump(every_preset(strategy), file)
        return
    epochs_run = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_run.append(epoch)

        def on_train_batch_end(self, batch, logs=None):
            if args.die_at_epoch == epochs_run[-1] and batch == args.die_at_batch:
                os._exit(17)  # a killed machine: no clean-up, no flush

    callbacks = [Record()] + ([kad_callbacks.BackupAndRestore(args.backup)] if args.backup else [])
    weights, history = train(strategy, args.defense, callbacks)
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, f"worker-{args.index}.npz"), *weights)
    with open(os.path.join(args.out, f"worker-{args.index}.json"), "w") as file:
        json.dump({"history": history, "epochs_run": epochs_run}, file)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
