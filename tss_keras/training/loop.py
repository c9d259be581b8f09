"""One custom training loop for every strategy: default, Mirrored and MultiWorkerMirrored.

Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (keras issue
20585), so every stage trains through ``TrainingLoop`` instead: the model's
own ``train_step`` runs inside ``strategy.run`` in a ``tf.function``, fed by
``strategy.distribute_datasets_from_function``. Around it the loop
provides what the Keras callbacks used to:

- losses reduced across replicas, and a NaN/inf check on the reduced values,
  so that every worker stops at the same step (a per-worker exit would hang
  the others in their next collective);
- checkpoints every ``checkpoint_every`` steps and at the end: every worker
  saves (saving is collective), the chief into the stage's checkpoint folder,
  the others into a temporary folder removed after each save; every worker
  restores from the chief's folder, so all resume at the same step;
- preemption: SIGTERM saves a checkpoint at a step all workers agree on and
  stops with ``TrainingPreempted`` (``PreemptionCheckpointHandler`` under
  MultiWorkerMirroredStrategy; a signal handler within one process);
- TensorBoard scalars and image hooks, and a progress display, on the chief.
"""

import math
import signal

import tensorflow as tf

from tss_keras.errors import NonFiniteLossError
from tss_keras.progress import Progress
from tss_keras.training.distribute import (Cluster, discard_worker_write_dir, replica_stream,
                                           worker_write_dir)


class TrainingPreempted(RuntimeError):
    """SIGTERM arrived; a checkpoint was saved and the run can be resumed by re-running it."""

    exit_code = 42  # what TF's PreemptionCheckpointHandler uses to ask for a restart


class _SigtermFlag:
    """Within one process: SIGTERM sets a flag the loop checks after each step."""

    def __init__(self):
        self.received = False
        self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.received = True

    def close(self):
        signal.signal(signal.SIGTERM, self.previous)


class TrainingLoop:
    """Trains ``trainer`` (a keras.Model with ``train_step``) for ``total_steps`` steps.

    Args:
        strategy: the tf.distribute strategy the trainer was built under.
        trainer: a compiled keras.Model whose ``train_step(batch)`` applies its
            own optimizers and returns a dict of scalar metrics.
        make_stream: ``f(shard_index, num_shards)`` -> a tf.data dataset of
            per-replica batches for the trainer (see ``replica_stream``).
        total_steps: the step to train to (exactly).
        checkpoint_dir: the stage's checkpoint folder (the chief's).
        trackables: what a checkpoint holds, e.g. ``{"model": m, "optimizer": o}``.
        checkpoint_every: steps between checkpoints, scalar summaries and
            progress lines.
        log_dir: TensorBoard folder (the chief writes it).
        cluster: this process's ``Cluster``.
        name: the stage name shown in progress lines.
        jit_compile: compile the replica step with XLA.
        hooks: functions ``f(step)`` run on the chief after each checkpoint
            (image summaries).
        monitors: functions ``f(step, values)`` run on the chief after every
            step with the reduced metrics (training-health warnings).
        verbose: show progress.

    Example:
        >>> loop = TrainingLoop(strategy, trainer, make_stream, 1000, "run/lnet/checkpoints",
        ...                     {"model": lnet, "optimizer": optimizer})
        >>> loop.run()
    """

    def __init__(self, strategy, trainer, make_stream, total_steps, checkpoint_dir, trackables,
                 checkpoint_every=500, log_dir=None, cluster=None, name="train",
                 jit_compile=False, hooks=(), monitors=(), verbose=True):
        self.strategy = strategy
        self.trainer = trainer
        self.make_stream = make_stream
        self.total_steps = int(total_steps)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.log_dir = log_dir
        self.cluster = cluster or Cluster()
        self.name = name
        self.jit_compile = jit_compile
        self.hooks = list(hooks)
        self.monitors = list(monitors)
        self.verbose = verbose
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.checkpoint = tf.train.Checkpoint(step=self.step, **trackables)
        self.restored_from = None

    # -- checkpoints -------------------------------------------------------

    def restore(self):
        """Restores the chief's latest checkpoint (every worker); returns the step reached."""
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            self.checkpoint.restore(latest).expect_partial()
            self.restored_from = latest
        return int(self.step.numpy())

    def save(self):
        """Checks the weights are finite, then saves (every worker; only the chief's copy stays)."""
        for variable in self.trainer.trainable_variables:
            if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                raise NonFiniteLossError(
                    f"weights became non-finite in training ({variable.path}); stopped. The "
                    f"last good checkpoint is kept in {self.checkpoint_dir}")
        directory = worker_write_dir(self.checkpoint_dir, self.cluster)
        manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=2)
        path = manager.save(checkpoint_number=int(self.step.numpy()))
        discard_worker_write_dir(self.checkpoint_dir, self.cluster)
        return path

    # -- the step ----------------------------------------------------------

    def _step_function(self):
        replica_step = self.trainer.train_step
        if self.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function
        def step(iterator):
            values = self.strategy.run(replica_step, args=(next(iterator),))
            self.step.assign_add(1)
            return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                    for name, value in values.items()}
        return step

    def _check_finite(self, values):
        for name, value in values.items():
            if "loss" in name and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{name} became {float(value)} in training at step {int(self.step.numpy())}; "
                    f"stopped. The last good checkpoint is kept in {self.checkpoint_dir}")

    def _preemption(self):
        """(run_step, check) pair that saves and stops on SIGTERM."""
        if self.cluster.multi_worker:
            handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                self.strategy.cluster_resolver, self.checkpoint, self.checkpoint_dir,
                tf.distribute.experimental.TerminationConfig(exit_fn=self._preempted))
            return handler.run, None
        flag = _SigtermFlag()

        def check():
            if flag.received:
                flag.close()
                self.save()
                self._preempted()
        return (lambda fn, *args: fn(*args)), (check, flag)

    def _preempted(self):
        raise TrainingPreempted(
            f"{self.name}: stopped by SIGTERM at step {int(self.step.numpy())}; a checkpoint "
            f"was saved in {self.checkpoint_dir}. Run the same command again to resume.")

    def run(self):
        """Trains to ``total_steps`` (resuming if a checkpoint exists); returns the step reached."""
        start = self.restore()
        if self.restored_from and self.cluster.is_chief and self.verbose:
            print(f"{self.name}: resumed at step {start} ({self.restored_from})", flush=True)
        if start >= self.total_steps:
            return start
        dataset = self.strategy.distribute_datasets_from_function(
            lambda context: replica_stream(self.make_stream, context))
        iterator = iter(dataset)
        step_fn = self._step_function()
        run_step, preemption = self._preemption()
        writer = (tf.summary.create_file_writer(self.log_dir)
                  if self.log_dir and self.cluster.is_chief else tf.summary.create_noop_writer())
        progress = Progress(self.total_steps, self.name, "step", self.checkpoint_every,
                            self.verbose and self.cluster.is_chief, start)
        try:
            for step in range(start + 1, self.total_steps + 1):
                values = run_step(step_fn, iterator)
                self._check_finite(values)
                progress.update(step, values)
                for monitor in self.monitors:
                    monitor(step, values)
                if step % self.checkpoint_every == 0 or step == self.total_steps:
                    with writer.as_default(step=step):
                        for name, value in values.items():
                            tf.summary.scalar(f"{self.name}/{name}", value)
                    writer.flush()
                    for metric in self.trainer.metrics:
                        metric.reset_state()
                    self.save()
                    if self.cluster.is_chief:
                        for hook in self.hooks:
                            hook(step)
                if preemption:
                    preemption[0]()
        finally:
            if preemption:
                preemption[1].close()
            writer.close()
        if self.cluster.multi_worker:
            self.check_workers_agree()
        return int(self.step.numpy())

    def check_workers_agree(self):
        """Checks every worker ends with the same weights (a restore mix-up would not).

        Each replica reduces its copy of the weights to one number and
        compares it with the mean over all replicas; the count of replicas
        that differ is summed, so every worker reaches the same verdict.
        """
        def fingerprint():
            total = tf.constant(0.0, tf.float64)
            for i, variable in enumerate(self.trainer.trainable_variables):
                values = tf.cast(tf.reshape(variable, [-1]), tf.float64)
                total += tf.reduce_sum(values * (1.0 + 0.1 * i)) + tf.reduce_sum(values ** 2)
            return total

        @tf.function
        def disagreeing():
            def replica():
                own = fingerprint()
                mean = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.MEAN, own)
                tolerance = 1e-6 * tf.maximum(tf.constant(1.0, tf.float64), tf.abs(mean))
                return tf.cast(tf.abs(own - mean) > tolerance,
                               tf.float64)
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                        self.strategy.run(replica), axis=None)

        if float(disagreeing()) > 0:
            raise RuntimeError(f"{self.name}: the workers' weights differ after training; they "
                               f"did not resume from the same checkpoint")
        if self.cluster.is_chief and self.verbose:
            print(f"{self.name}: weights identical on all {self.cluster.num_workers} workers",
                  flush=True)
