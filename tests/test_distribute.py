"""Training under tf.distribute: two logical CPU devices against one, and two worker processes.

Each run is a real training process (tests/train_process.py): a strategy must be set up before
TensorFlow starts, which this test process did long ago.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import make_config
from pipeline.errors import ConfigError
from pipeline.training import checkpoints
from pipeline.training.train import CHECKPOINTS, SUMMARY

HARNESS = Path(__file__).with_name("train_process.py")
PROJECT = HARNESS.parents[1]

# 256 pairs in batches of 32, each batch sorted by length on its own (pool_batches=1): the two
# halves that two replicas get hold different numbers of tokens, so the loss must be scaled by
# the global batch's token count to match one device.
DATA = ["data.train_limit=256", "data.pool_batches=1"]

# One device and two replicas add the same numbers in another order (float32): measured,
# their per-step losses differ in the sixth or seventh significant digit. Scaling each replica's
# loss by its own token count instead (Keras's per-replica mean) differs by 1e-3 and more.
RTOL = 1e-4
REPORT_RTOL = 1e-3
WEIGHTS_ATOL = 1e-4


def final_weights(run_dir: Path) -> list[np.ndarray]:
    import h5py

    path = checkpoints.epoch_dir(run_dir / CHECKPOINTS, 2) / checkpoints.WEIGHTS
    with h5py.File(path) as f:
        found = []
        f.visititems(lambda name, item: found.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


def start(run_dir: Path, data_dir: Path, spm_model: Path, overrides: list[str], **env) -> subprocess.Popen:
    """A training process on the tiny preset, importing this project's pipeline, not an installed one."""
    command = [sys.executable, str(HARNESS), str(run_dir), str(data_dir), str(spm_model), "tiny", *DATA,
               *overrides]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT), **env}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=PROJECT)  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """The process's output once it exits 0; a hang fails the test instead of blocking it."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"no exit within {timeout} s:\n{output[-3000:]}") from None
    assert process.returncode == 0, output[-3000:]
    return output


def test_an_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="train.strategy must be default, mirrored or multi_worker"):
        make_config("tiny", overrides=["train.strategy=horovod"])
    assert make_config("tiny").train.strategy == "default"


def test_multi_worker_without_tf_config_is_a_config_error(monkeypatch):
    from pipeline import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="train.strategy=multi_worker needs TF_CONFIG"):
        distribute.build("multi_worker")


def test_replicas_of_a_batch_hold_different_token_counts(prepared_data, spm_model):
    from pipeline import dataset

    cfg = make_config("tiny", overrides=DATA)
    batches = dataset.batches("de-en", "train", prepared_data, spm_model, cfg.data, training=True)
    halves = [(int(np.sum(y[:16] != 0)), int(np.sum(y[16:] != 0))) for _, y in batches.as_numpy_iterator()]
    assert all(first != second for first, second in halves), halves


# Clipped at a global norm that every step exceeds, so the clip always acts: summing the
# replicas' gradients and then clipping (GlobalBatchAdam, like one device) moves the weights
# otherwise than clipping each replica's part and then summing (Keras's Adam), which Adam's
# indifference to the gradient's scale does not hide.
TWINS = ["train.epochs=2", "train.length_penalties=[0.6]", "train.clipnorm=0.01"]
SCRIPTED = {"SCRIPTED_BLEU": "1,2"}  # decoding the validation set would only cost time here


@pytest.fixture(scope="module")
def one_device(prepared_data, spm_model, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The run that every strategy must reproduce, on one device: its folder and per-step losses."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    losses = run_dir.with_name("losses.json")
    finish(start(run_dir, prepared_data, spm_model, TWINS, STEP_LOSSES=str(losses), **SCRIPTED))
    return run_dir, np.array(json.loads(losses.read_text()))


@pytest.mark.slow
def test_two_replicas_train_as_one_device_on_the_same_global_batch(
    one_device, prepared_data, spm_model, tmp_path
):
    # Each epoch's batches depend on its number alone: the batch Keras draws under a strategy to
    # build the model moves nothing on, and both runs train on the same global batches.
    losses = tmp_path / "two.json"
    process = start(tmp_path / "two", prepared_data, spm_model, [*TWINS, "train.strategy=mirrored"],
                    STEP_LOSSES=str(losses), LOGICAL_CPUS="2", **SCRIPTED)  # fmt: skip
    output = finish(process)
    assert "train.strategy=mirrored: 2 replicas, 16 sentences each per batch" in output
    one, two = one_device[1], np.array(json.loads(losses.read_text()))
    assert one.shape == two.shape == (2, 8)
    # Keras's running mean of the loss: exact at every batch that splits evenly; the last batch
    # of an epoch is a partial one that may not (then Keras averages the replicas' means).
    np.testing.assert_allclose(two[:, :-1], one[:, :-1], rtol=RTOL)
    np.testing.assert_allclose(two[:, -1], one[:, -1], rtol=REPORT_RTOL)
    assert one[-1, -1] < one[0, -1]  # it learns
    # The weights after two epochs, partial batches included.
    for a, b in zip(final_weights(one_device[0]), final_weights(tmp_path / "two"), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=WEIGHTS_ATOL)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"localhost:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start_workers(run_dirs: list[Path], data_dir, spm_model, overrides, **env) -> list[subprocess.Popen]:
    ports = free_ports(len(run_dirs))
    return [
        start(
            run_dir,
            data_dir,
            spm_model,
            ["train.strategy=multi_worker", *overrides],
            TF_CONFIG=tf_config(ports, i),
            **env,
        )  # fmt: skip
        for i, run_dir in enumerate(run_dirs)
    ]


def finish_all(workers: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    """Each worker's output once all exit 0; one that fails or hangs takes the others down with it."""
    try:
        return [finish(w, timeout) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()


@pytest.mark.slow
def test_two_workers_train_as_one_device_and_only_the_chief_writes(
    one_device, prepared_data, spm_model, tmp_path
):
    # Worker 1 is given a run directory of its own, to see that it writes nothing there.
    chief_dir, other_dir = tmp_path / "run", tmp_path / "worker-1"
    outputs = finish_all(start_workers([chief_dir, other_dir], prepared_data, spm_model, TWINS, **SCRIPTED))
    assert "train.strategy=multi_worker: 2 replicas, 16 sentences each per batch" in outputs[0]
    assert "the chief writes" in outputs[1]
    assert not other_dir.exists()
    summary = json.loads((chief_dir / SUMMARY).read_text())
    assert summary["epochs"] == 2 and summary["stopped_by"] == "epochs"
    # Two machines train what one device trains: the same weights after two epochs.
    for a, b in zip(final_weights(one_device[0]), final_weights(chief_dir), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=WEIGHTS_ATOL)

    from pipeline.decoding.export import export

    exported = export(chief_dir, tmp_path / "saved" / "model")
    import tensorflow as tf

    translator = tf.saved_model.load(str(exported))
    out = translator.translate(tf.constant(["Ein Hund läuft."]), tf.constant(2), tf.constant(0.6))
    assert out["translations"].shape == (1,)


def stop(process: subprocess.Popen) -> str:
    """SIGKILL (if it still runs) and its output."""
    if process.poll() is None:
        process.kill()
    output, _ = process.communicate(timeout=60)
    return output


@pytest.mark.slow
def test_a_killed_worker_and_its_restarted_cluster_resume_from_the_chiefs_checkpoint(
    prepared_data, spm_model, tmp_path
):
    # Both workers are given the same run directory: a filesystem the machines share.
    run_dir = tmp_path / "run"
    overrides = ["train.epochs=3", "train.length_penalties=[0.6]"]
    env = {"SCRIPTED_BLEU": "1,2,3"}
    workers = start_workers([run_dir, run_dir], prepared_data, spm_model, overrides, PAUSE_AT="2:3", **env)
    marker, deadline = Path(f"{run_dir}.paused-2"), time.monotonic() + 300
    try:
        while not marker.exists():  # one worker pauses at batch 3 of epoch 2; the other waits on it
            assert all(w.poll() is None for w in workers), "a worker ended before the pause"
            assert time.monotonic() < deadline, "no pause within 300 s"
            time.sleep(0.2)
        workers[1].send_signal(signal.SIGKILL)  # worker 1 dies in the middle of epoch 2 ...
        assert workers[1].wait(timeout=60) == -signal.SIGKILL
    finally:
        # ... and the chief, left waiting in a collective for it, is stopped as a user would.
        outputs = [stop(w) for w in workers]
    assert checkpoints.epochs(run_dir / CHECKPOINTS) == [1], outputs[0][-3000:]
    assert not (run_dir / SUMMARY).exists()

    # A worker that cannot see the chief's run directory would start from epoch 0 while the chief
    # resumes: both stop, saying so, before any step.
    apart = start_workers([run_dir, tmp_path / "elsewhere"], prepared_data, spm_model, overrides, **env)
    try:
        outputs = [w.communicate(timeout=300)[0] for w in apart]
    finally:
        for w in apart:
            if w.poll() is None:
                w.kill()
    assert [w.returncode for w in apart] == [1, 1]
    for output in outputs:
        assert "the workers resume from different epochs" in output, outputs[1][-3000:]
    assert checkpoints.epochs(run_dir / CHECKPOINTS) == [1]

    # The same command on both machines again: both resume from the chief's epoch-1 checkpoint.
    outputs = finish_all(start_workers([run_dir, run_dir], prepared_data, spm_model, overrides, **env))
    assert all("resuming after epoch 1" in output for output in outputs)
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["epochs"] == 3 and summary["processes"] == 2
    assert [row["process"] for row in summary["history"]] == [1, 2, 2]

    from pipeline.decoding.export import export

    exported = export(run_dir, tmp_path / "saved" / "model")
    import tensorflow as tf

    translator = tf.saved_model.load(str(exported))
    out = translator.translate(tf.constant(["Ein Hund läuft."]), tf.constant(2), tf.constant(0.6))
    assert out["translations"].shape == (1,)
