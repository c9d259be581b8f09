"""Starts trainers.run as several worker processes on one machine, each with its TF_CONFIG."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tss_keras.errors import UsageError


def free_ports(count, host="127.0.0.1"):
    """``count`` TCP ports that are free on ``host`` right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    """The TF_CONFIG of worker ``index`` in a cluster of ``addresses``."""
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": index}})


PREEMPTED = 42  # a worker saved a checkpoint on SIGTERM and asks to be restarted


def _pump(stream, prefix, out):
    for line in iter(stream.readline, b""):
        out.write(prefix + line.decode(errors="replace"))
        out.flush()
    stream.close()


def _stop(processes, grace=20.0):
    """Waits up to ``grace`` seconds for the workers; SIGTERM, then SIGKILL, the rest."""
    deadline = time.time() + grace / 2
    while time.time() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch_workers(num_workers, run_args, host="127.0.0.1", module="trainers.run", env=None):
    """Runs ``python -m module run_args`` as ``num_workers`` workers; returns the exit code.

    The first non-zero exit stops the other workers and is returned. A
    SIGTERM or SIGINT to this process is forwarded to every worker.

    Args:
        num_workers: how many processes.
        run_args: flags for ``trainers.run`` (``--strategy=multi_worker`` is added last).
        host: the address workers listen on.
        module: the module each worker runs.
        env: extra environment variables for the workers.
    """
    if num_workers < 1:
        raise UsageError(f"--workers: must be at least 1 (got {num_workers})")
    addresses = [f"{host}:{port}" for port in free_ports(num_workers, host)]
    base_env = dict(os.environ, **(env or {}))
    # TF's preemption handler asks the GCE metadata server whether it runs on
    # GCP; workers on one machine need no GCE maintenance notices, so the
    # question goes to a closed loopback port instead of the network.
    base_env.setdefault("GCE_METADATA_IP", "127.0.0.1:9")
    processes, pumps = [], []
    for index in range(num_workers):
        worker_env = dict(base_env, TF_CONFIG=tf_config(addresses, index))
        process = subprocess.Popen(
            [sys.executable, "-m", module, *run_args, "--strategy=multi_worker"],
            env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        pump = threading.Thread(target=_pump, args=(process.stdout, f"[w{index}] ", sys.stdout),
                                daemon=True)
        pump.start()
        pumps.append(pump)

    def forward(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = 0
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0, PREEMPTED)]
            if failed:
                code = failed[0].returncode
                _stop(processes)
                break
            if any(p.poll() == PREEMPTED for p in processes):
                _stop(processes, grace=120.0)  # the others are saving at the same step
                break
            time.sleep(0.2)
        codes = [p.returncode for p in processes]
        code = code or next((c for c in codes if c), 0)
        if code < 0:  # killed by a signal: report it as a shell would
            code = 128 - code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for pump in pumps:
            pump.join(timeout=5)
    return code
