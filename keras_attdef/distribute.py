"""Training on several machines: `tf.distribute.MultiWorkerMirroredStrategy` with Keras 3's `fit`.

Keras 3's `fit` stops under `MultiWorkerMirroredStrategy` (keras-team/keras#20585, open since 2024-12) in
two places, both outside the training step itself:

1. `_maybe_symbolic_build` takes a first batch to build the model and averages its per-replica parts with
   an eager `strategy.reduce`, which the collective strategy rejects ("Attempt to convert a value
   (PerReplica...)"). The build needs only the batch's shapes: one replica's part serves.
2. `reduce_per_replica` averages the step's scalar logs with `strategy.reduce("MEAN", v, axis=0)`, which
   fails on a scalar ("Invalid reduction dimension 0"). The mean over replicas (`axis=None`) is what the
   single-machine path computes.

`RobustModel` works around both (see `keras_fixes`), so the same training code runs on one machine or on
several: every worker runs the same script with its own `TF_CONFIG`.

Example:

>>> import json, os
>>> os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["localhost:12345"]},
...                                       "task": {"type": "worker", "index": 0}})
>>> read_tf_config()["task"]
{'type': 'worker', 'index': 0}
>>> del os.environ["TF_CONFIG"]
"""
from __future__ import annotations

import contextlib
import json
import os
import socket

import tensorflow as tf

from keras import tree

__all__ = ["read_tf_config", "multi_worker_strategy", "is_multi_worker", "worker_index", "keras_fixes",
           "local_cluster"]


def read_tf_config(environ=None) -> dict:
    """`TF_CONFIG`, parsed and checked: a worker list and this task's type and index in it.

    Raises:
        ValueError: the variable is missing, not JSON, names no worker, or gives an index outside the list,
            with what to set instead.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\' (index 1 on the second machine)')
    if not raw:
        raise ValueError(f"Multi-worker training reads the cluster from TF_CONFIG, which is not set. Set {example}.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}). Set {example}.") from None
    workers = (config.get("cluster") or {}).get("worker") or []
    if not isinstance(workers, list) or not workers:
        raise ValueError(f"TF_CONFIG names no worker (cluster.worker is empty or missing). Set {example}.")
    task = config.get("task") or {}
    if task.get("type") not in ("worker", "chief"):
        raise ValueError(f"TF_CONFIG's task.type is {task.get('type')!r}; this library's workers are 'worker'. "
                         f"Set {example}.")
    index = task.get("index")
    if task.get("type") == "worker" and (not isinstance(index, int) or not 0 <= index < len(workers)):
        raise ValueError(f"TF_CONFIG's task.index is {index!r} but cluster.worker lists {len(workers)} worker(s): "
                         f"give each machine an index from 0 to {len(workers) - 1}.")
    return config


def multi_worker_strategy(timeout_seconds: float | None = None) -> tf.distribute.MultiWorkerMirroredStrategy:
    """A `MultiWorkerMirroredStrategy` for the cluster in `TF_CONFIG` (checked first, see `read_tf_config`).

    Create it before any other TensorFlow operation, then build and compile the model under its scope.

    Args:
        timeout_seconds: how long an all-reduce waits for the other workers before failing; set it so that a
            worker whose peer died stops (and can be restarted from its backup) instead of waiting forever.

    Returns:
        The strategy.
    """
    read_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_multi_worker(strategy) -> bool:
    """True under a `MultiWorkerMirroredStrategy` whose cluster has more than one worker."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())  # noqa: SLF001 (the only public-equivalent signal)


def worker_index(strategy=None) -> int:
    """This worker's index in the cluster (0 on one machine)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return 0
    return int(strategy.cluster_resolver.task_id)


def local_part(strategy, batch):
    """A distributed batch's first local replica part (its shapes are the model's to build on)."""
    def first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value
    return tree.map_structure(first, batch)


@contextlib.contextmanager
def keras_fixes(strategy):
    """While `fit` / `evaluate` run under a multi-worker strategy: scalar logs averaged with `axis=None`.

    Keras's step function looks `reduce_per_replica` up in its module when it is traced (inside `fit`), so
    the replacement is in place for exactly that span and restored after. On one machine it does nothing.
    """
    if not is_multi_worker(strategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy_, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy_):
            return tree.map_structure(lambda v: strategy_.reduce("MEAN", v, axis=None), values)
        return original(values, strategy_, reduction)

    keras_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_trainer.reduce_per_replica = original


def local_cluster(workers: int) -> list:
    """`TF_CONFIG` dicts of a cluster of `workers` processes on this machine's free loopback ports (tests,
    benchmarks, trying multi-worker training on one machine)."""
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [{"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}} for i in range(workers)]
