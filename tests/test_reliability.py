"""Reliability: data files never run code (issue 13)."""

import os
import pickle
import re

import numpy as np
import pytest

from nmnc.data import load_dataset
from nmnc.errors import DataError


class _Payload:
    """What a poisoned batch file holds: unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _release(root, first_batch: dict | object, rows: int = 20):
    """A CIFAR-10 python release under ``root/cifar10`` with seeded pixels; ``first_batch`` is
    what data_batch_1 holds."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {
            "data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, rows)),
            "filenames": [f"img_{j}.png".encode() for j in range(rows)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(first_batch if i == 0 else batch, f, protocol=2)
    return folder


def test_a_poisoned_batch_file_runs_nothing(tmp_path):
    marker = tmp_path / "payload-ran"
    folder = _release(tmp_path, {"data": _Payload(marker), "labels": [0]})
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()  # the payload was refused before it could run
    msg = str(err.value)
    assert "data_batch_1 is not a CIFAR-10 batch" in msg and ".open" in msg
    assert "nothing in it was run" in msg and str(folder) in msg and "\n" not in msg


def test_a_batch_file_that_is_not_a_dict_is_one_line(tmp_path):
    folder = _release(tmp_path, [1, 2, 3])
    with pytest.raises(DataError, match="data_batch_1 is missing or damaged"):
        load_dataset("cifar10", tmp_path)
    assert folder.exists()


def test_checkpoint_pickles_say_what_they_hold(tmp_path):
    """A payload is called code (also one spelled with old string opcodes); other Python objects
    are objects, not code; nothing runs either way."""
    import argparse

    import torch

    from nmnc.checkpoint import load_checkpoint
    from nmnc.errors import CheckpointError

    marker = tmp_path / "payload-ran"
    old = b"\x80\x04U\x05posixU\x06system\x93X\x04\x00\x00\x00true\x85R."
    (tmp_path / "old.pt").write_bytes(old)  # protocol 4, names given as BINSTRINGs
    torch.save({"format": "nmnc", "x": _Payload(marker)}, tmp_path / "evil.pt")
    torch.save({"format": "nmnc", "a": np.zeros(3), "n": argparse.Namespace()}, tmp_path / "np.pt")
    for name, phrase in (
        ("old.pt", "names posix.system: code, not checkpoint data"),
        ("evil.pt", "names io.open: code, not checkpoint data"),
        ("np.pt", "holds pickled Python objects (_codecs.encode, argparse.Namespace"),
    ):
        with pytest.raises(CheckpointError, match=re.escape(phrase)):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_a_release_shaped_batch_loads_with_the_restricted_unpickler(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
    _release(tmp_path, {"data": data, "labels": list(range(10)) * 2})
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds.train) == 100 and len(ds.test) == 20
    first = data[0].reshape(3, 32, 32).transpose(1, 2, 0)  # channel-major rows
    assert np.array_equal(ds.train.images[0].numpy(), first)
    assert ds.train.labels[:10].tolist() == list(range(10))


def _row(score: float):
    from brain_benchmarks.results import ResultRow

    return ResultRow("m", "cnn", "bp", 0, "h", "B.IT-rsa", 1, "IT", "macaque", "conv1", True, score)


def test_a_full_disk_leaves_the_results_table_as_it_was(tmp_path, monkeypatch):
    """A write that fails half-way (ENOSPC, simulated: the disk here cannot be filled) is cut
    back, so the table stays readable and the next append lands cleanly."""
    import errno
    import os

    from brain_benchmarks import results

    path = tmp_path / "results.csv"
    results.append_rows(path, [_row(0.1)])
    before = path.read_bytes()
    real = os.write

    def full(fd, data):
        real(fd, bytes(data[:7]))  # half a row reaches the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "write", full)
    with pytest.raises(DataError, match="No space left on device.*the table is as it was"):
        results.append_rows(path, [_row(0.2)])
    assert path.read_bytes() == before
    monkeypatch.setattr(results.os, "write", real)
    results.append_rows(path, [_row(0.3)])
    assert list(results.read_results(path).score) == [0.1, 0.3]


def test_a_foreign_file_is_not_appended_to(tmp_path):
    from brain_benchmarks.results import append_rows

    path = tmp_path / "results.csv"
    path.write_text("name,phone\nAda,123\n")
    with pytest.raises(DataError, match="is not a results table written by brain_benchmarks"):
        append_rows(path, [_row(0.1)])
    assert path.read_text() == "name,phone\nAda,123\n"


def test_decoded_image_cache_follows_every_file_of_a_tree(tmp_path, monkeypatch, cifar_tree):
    """Adding, removing or replacing an image inside a class folder invalidates the decoded
    cache (the top folder's own size and mtime do not change)."""
    from PIL import Image

    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    root = cifar_tree(tmp_path / "tree", 3, "png")
    assert len(load_dataset("cifar10", root).train) == 6
    for f in (root / "cifar10" / "train" / "cat").iterdir():
        f.unlink()  # every training image of a class removed
    assert len(load_dataset("cifar10", root).train) == 3
    extra = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(extra).save(root / "cifar10" / "train" / "cat" / "new.png")  # added
    assert len(load_dataset("cifar10", root).train) == 4
    new = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(new).save(root / "cifar10" / "train" / "airplane" / "0.png")  # replaced
    ds = load_dataset("cifar10", root)
    assert any(np.array_equal(x, new) for x in ds.train.images.numpy())


def test_one_writer_per_run_folder(tmp_path):
    """While a process holds a run folder, a second run into it is a one-line error naming the
    holder; the lock goes with its holder, so a crashed run's folder is free again."""
    import subprocess
    import sys
    import textwrap

    from nmnc.errors import NmncError
    from nmnc.io import exclusive

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from nmnc.io import exclusive
                with exclusive({str(out / ".lock")!r}, "run folder"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(NmncError, match=rf"run folder {out} is in use by process {holder.pid}"):
            with exclusive(out / ".lock", f"run folder {out}"):
                pass
    finally:
        holder.kill()  # like kill -9: no clean-up runs
        holder.wait()
    with exclusive(out / ".lock", f"run folder {out}"):  # taken over
        assert str(os.getpid()) in (out / ".lock").read_text()


def test_a_second_training_into_a_busy_run_folder_is_refused(tmp_path, data_root, capsys):
    import subprocess
    import sys
    import time

    from nmnc.errors import run_cli
    from nmnc.train import main as train_main

    out = tmp_path / "run"
    args = ["--out", str(out), "--train-examples", "320", "--batch-size", "32", "--quiet"]
    args += ["--set", "width=0.25", "--data-root", str(data_root)]
    first = subprocess.Popen([sys.executable, "-m", "nmnc.train", *args, "--steps", "100000"])
    try:
        deadline = time.time() + 120
        while not ((out / ".lock").exists() and (out / ".lock").read_text()):
            assert first.poll() is None and time.time() < deadline, "the first run never started"
            time.sleep(0.2)
        assert run_cli(train_main, [*args, "--steps", "2"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"is in use by process {first.pid}" in err[0], err
    finally:
        first.kill()
        first.wait()


def test_progress_in_a_log_is_lines_not_redraws():
    """Written to a file or pipe, a bar is one line per interval and its last state, never the
    carriage-return redraws of a terminal bar."""
    import io

    from nmnc.progress import tqdm

    log = io.StringIO()
    bar = tqdm(total=1000, desc="train", unit="step", file=log, leave=False)
    for i in range(1000):
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")  # as training does each step
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 1 <= len(lines) <= 3
    assert lines[-1].startswith("train: 100%") and "1000/1000" in lines[-1]
    quiet = io.StringIO()
    for _ in tqdm(range(10), file=quiet, disable=True):
        pass
    assert quiet.getvalue() == ""
