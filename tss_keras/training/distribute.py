"""Choosing a tf.distribute strategy, and what a process knows about its cluster.

``create_strategy`` must be the first TensorFlow call that touches devices
in the process: MultiWorkerMirroredStrategy fails with "Collective ops must
be configured at program startup" once devices are initialised, and the CPU
can only be split into logical devices before that too.
"""

import dataclasses
import json
import os
import shutil

import tensorflow as tf

from tss_keras.errors import UsageError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among the training workers.

    Attributes:
        worker_index: 0 for the chief (or a single process).
        num_workers: how many processes train together.
    """

    worker_index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self):
        return self.worker_index == 0

    @property
    def multi_worker(self):
        return self.num_workers > 1


def read_tf_config(environ=None):
    """Parses ``TF_CONFIG`` (JSON with ``cluster`` and ``task``, as TF documents it).

    Returns:
        (cluster_spec dict, task type, task index).

    Raises:
        UsageError naming TF_CONFIG when it is missing or malformed.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if not raw:
        raise UsageError("TF_CONFIG: --strategy=multi_worker needs the TF_CONFIG environment "
                         "variable ({\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": i}})")
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise UsageError(f"TF_CONFIG: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UsageError("TF_CONFIG: must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker"), list) \
            or not cluster["worker"]:
        raise UsageError("TF_CONFIG: 'cluster' must list the workers' host:port addresses "
                         "under 'worker'")
    addresses = [a for jobs in cluster.values() if isinstance(jobs, list) for a in jobs]
    bad = [a for a in addresses if not isinstance(a, str) or ":" not in a]
    if bad:
        raise UsageError(f"TF_CONFIG: addresses must be 'host:port' (got {bad[0]!r})")
    if "ps" in cluster:
        raise UsageError("TF_CONFIG: parameter servers ('ps') are not supported; list "
                         "every machine as a worker (MultiWorkerMirroredStrategy)")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise UsageError("TF_CONFIG: 'task' must name this process's job type "
                         f"(one of {sorted(cluster)}) and index")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise UsageError(f"TF_CONFIG: task index {index!r} is not in 0.."
                         f"{len(cluster[task['type']]) - 1}")
    return cluster, task["type"], index


def _cluster_of(cluster_spec, task_type, task_index):
    """Worker index: the chief first, then workers in order."""
    chiefs = cluster_spec.get("chief", [])
    if task_type == "chief":
        return Cluster(0, len(chiefs) + len(cluster_spec["worker"]))
    return Cluster(len(chiefs) + task_index, len(chiefs) + len(cluster_spec["worker"]))


def _set_gpu_visibility(num_gpus):
    if num_gpus is None:
        return
    if num_gpus < 0:
        raise UsageError(f"--num_gpus: must be 0 or more (got {num_gpus})")
    gpus = tf.config.list_physical_devices("GPU")
    tf.config.set_visible_devices(gpus[:num_gpus], "GPU")


def create_strategy(strategy="auto", num_gpus=None, cpu_replicas=0):
    """Returns (tf.distribute strategy, Cluster).

    Args:
        strategy: ``auto`` (mirrored over the GPUs if more than one, else
            default), ``default`` (one device), ``mirrored``, or
            ``multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG).
        num_gpus: use the first N GPUs of each machine (None: all). Set as
            device visibility before anything initialises the devices.
        cpu_replicas: if > 1, split the CPU into this many logical devices
            and mirror over them, so multi-device code runs on any machine.
    """
    if strategy == "multi_worker":
        if cpu_replicas > 1:
            raise UsageError("--cpu_replicas: not with --strategy=multi_worker (each worker "
                             "uses its GPUs, or its CPU as one replica)")
        cluster_spec, task_type, task_index = read_tf_config()
        _set_gpu_visibility(num_gpus)
        return tf.distribute.MultiWorkerMirroredStrategy(), _cluster_of(
            cluster_spec, task_type, task_index)
    if cpu_replicas and cpu_replicas > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already configured in this process (the same split, in tests)
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) < cpu_replicas:
            raise UsageError(f"--cpu_replicas={cpu_replicas}: TensorFlow was initialised with "
                             f"{len(logical)} CPU device(s) before the split")
        return tf.distribute.MirroredStrategy([d.name for d in logical[:cpu_replicas]]), Cluster()
    _set_gpu_visibility(num_gpus)
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy([g.name for g in gpus] or None), Cluster()
    return tf.distribute.get_strategy(), Cluster()


def barrier(strategy):
    """Blocks until every worker reaches this point (a no-op within one process)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None).numpy()


def worker_write_dir(directory, cluster):
    """Where this worker writes a save that only the chief's copy of matters.

    The chief writes into ``directory``; every other worker into a temporary
    sibling folder that the caller removes after the save
    (``discard_worker_write_dir``). Every worker must still call the save:
    saving a distributed model is a collective operation.
    """
    if cluster.is_chief:
        return directory
    return os.path.join(os.path.dirname(directory.rstrip("/")),
                        f".worker{cluster.worker_index}-{os.path.basename(directory.rstrip('/'))}")


def discard_worker_write_dir(directory, cluster):
    """Removes a non-chief worker's temporary save folder (the chief keeps its own)."""
    if not cluster.is_chief:
        shutil.rmtree(worker_write_dir(directory, cluster), ignore_errors=True)


def replica_stream(make_stream, input_context):
    """The per-replica batches of one input pipeline, the same under any replica layout.

    Replica ``r`` (of all replicas in the cluster) always reads shard ``r`` of
    the data, whether its replicas sit on one machine or on several, so two
    GPUs on one machine train exactly as two machines with one GPU each.

    Args:
        make_stream: ``f(shard_index, num_shards)`` -> a dataset of per-replica batches.
        input_context: the ``tf.distribute.InputContext`` of this pipeline.
    """
    replicas = input_context.num_replicas_in_sync
    local = replicas // input_context.num_input_pipelines
    first = input_context.input_pipeline_id * local
    streams = [make_stream(first + j, replicas) for j in range(local)]
    if local == 1:
        return streams[0]
    choice = tf.data.Dataset.range(local).repeat()
    return tf.data.Dataset.choose_from_datasets(streams, choice)
