"""Training on several devices and machines: the tf.distribute strategy from config, and what
makes a step under it compute the one-device step on the same global batch.

``train.strategy`` picks one of:

- ``default``: one device, exactly the computation of a run without a strategy;
- ``mirrored``: ``MirroredStrategy`` over all local GPUs (or the logical CPU devices a test
  configures), one process;
- ``multi_worker``: ``MultiWorkerMirroredStrategy``, one process per machine, the cluster
  described by ``TF_CONFIG``; task 0 (the ``chief``, or ``worker`` 0 without one) writes the run.

``data.batch_size`` stays the global batch: tf.distribute cuts each batch into one slice per
replica. Keras sums the replicas' gradients, so each replica's loss is its share of the global
batch's token mean (``global_sum`` of the token counts, in ``models/losses.py``), and
``GlobalBatchAdam`` clips the summed gradient, not each replica's part.

MultiWorkerMirroredStrategy must exist before TensorFlow runs its first op (it configures
the collective ops of the process), so ``build`` comes first: ``python -m pipeline train``
calls it before anything else, and ``train()`` receives the strategy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from pipeline.constants import STRATEGIES
from pipeline.errors import ConfigError


def build(name: str) -> tf.distribute.Strategy:
    """The strategy ``train.strategy`` names; call before any other TensorFlow op."""
    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All local GPUs; without one, all logical CPU devices (several only where a test made them).
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "train.strategy=multi_worker needs TF_CONFIG, the cluster and this process's task "
            "(docs/training.md: Training on several devices and machines)"
        )
    json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here, plainly
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run: the only process, or task 0 of the cluster."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def for_strategy(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """``dataset`` (of global batches) ready for ``strategy``, which cuts each batch into one
    slice per replica as Keras hands it over. With several workers, every worker reads the whole
    input pipeline (its shuffles are seeded, so the order is the same everywhere) and keeps its
    own slices of each batch: sharding by data, set here, because sharding by file, tf.data's
    default, would leave workers without data (a TFDS split of Multi30k is one file)."""
    if not is_multi_worker(strategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def build_for_fit(model: keras.Model, batches: tf.data.Dataset, strategy: tf.distribute.Strategy) -> None:
    """Builds ``model``'s metrics from one batch, for ``fit`` in ``strategy.scope()``.

    Under a strategy Keras builds them itself from a batch it averages across the replicas
    first, which fails for our dict inputs under MultiWorkerMirroredStrategy; built here, and
    with the strategy left to the scope, fit skips that step. Either way one batch is drawn
    before training, so the seeded shuffles are the same under mirrored and multi_worker.
    """
    if not is_multi_worker(strategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(batches)))
    model._distribute_strategy = None  # fit, in strategy.scope(), finds it there
    # Keras averages each step's metrics over the workers along axis 0, which scalars lack
    # (tensorflow/tensorflow#72388): give them one.
    compute_metrics = model.compute_metrics

    def with_axis(*args, **kwargs):
        return {name: tf.reshape(value, [1]) for name, value in compute_metrics(*args, **kwargs).items()}

    model.compute_metrics = with_axis


def replicas_in_step() -> int:
    """How many replicas compute the current step together: 1 outside a distributed step."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def global_sum(value: tf.Tensor) -> tf.Tensor:
    """``value`` summed over all replicas in sync; itself with one replica or outside a step."""
    if replicas_in_step() == 1:
        return value
    context = tf.distribute.get_replica_context()
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(value))


def agreement(strategy: tf.distribute.Strategy) -> tuple[Callable[[float], float], Callable[[bool], bool]]:
    """``(chiefs, anyone)``: every worker gets the chief's number, and True if any worker says so.

    A decision that ends training (early stopping, the time guard) must be the same on every
    worker, or the others wait in the next step's all-reduce for ever. With one process both
    are the identity and run no TensorFlow op.
    """
    if not is_multi_worker(strategy):
        return (lambda value: value), (lambda flag: flag)

    @tf.function
    def summed(value: tf.Tensor, first_replica_only: bool) -> tf.Tensor:
        def share() -> tf.Tensor:
            first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
            return value if not first_replica_only else tf.where(first, value, tf.zeros_like(value))

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(share), axis=None)

    def chiefs(value: float) -> float:
        # Replica 0 is the chief's: its value plus zeros from every other replica.
        return float(summed(tf.constant(value, tf.float64), True).numpy())

    def anyone(flag: bool) -> bool:
        return float(summed(tf.constant(float(flag), tf.float64), False).numpy()) > 0

    return chiefs, anyone


class GlobalBatchAdam(keras.optimizers.Adam):
    """Adam whose global-norm clipping sees the gradient of the whole global batch.

    Keras clips each replica's gradient, then sums them; here the sum comes first, then the
    clip, as on one device. With one replica it is ``keras.optimizers.Adam``, op for op.
    """

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)  # (summed once, here)
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return list(grads_and_vars)  # summed before the clip
        return super()._all_reduce_sum_gradients(grads_and_vars)
