"""Faults a user with bad luck meets (issue 13): the disk fills while a run saves its checkpoint,
scoring is killed with SIGKILL, the same scoring is run again, an image in a training set is
corrupt. Nothing is lost, nothing is duplicated, and each is a one-line error or a clean resume."""

import errno
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brain_benchmarks.results import read_results
from brain_benchmarks.score import ScoreConfig, score
from brain_benchmarks.score import main as score_main
from nmnc.checkpoint import load_checkpoint
from nmnc.errors import DataError, run_cli
from nmnc.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--train-examples", "64", "--batch-size", "32", "--quiet", "--set", "width=0.5"]
SMALL += ["ckpt_every=2", "eval_every=1000", "eval_examples=100", "schedule=constant"]


@contextmanager
def small_disk(folder: Path, size: int):
    """``folder`` as a tmpfs of ``size`` bytes; yields False where mounting is not allowed."""
    folder.mkdir(parents=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if r.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(
    tmp_path, data_root, monkeypatch, capsys
):
    """The next checkpoint does not fit on the disk: one line naming it, exit 2, the checkpoint
    of the last save intact; with space again, --resume finishes the run and matches a run that
    never met a full disk."""
    whole = tmp_path / "whole"
    assert run_cli(train_main, ["--out", str(whole), "--steps", "6", *SMALL]) == 0
    base = tmp_path / "base"
    assert run_cli(train_main, ["--out", str(base), "--steps", "2", *SMALL]) == 0
    size = (base / "checkpoint.pt").stat().st_size
    run = tmp_path / "disk" / "run"
    with small_disk(run.parent, int(size * 1.3) + (32 << 10)) as real:
        if not real:  # simulated: the file system refuses the checkpoint's bytes
            import pathlib

            write = pathlib.Path.write_bytes

            def full(self, data):
                if self.name.startswith(".checkpoint.pt"):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return write(self, data)

            monkeypatch.setattr(pathlib.Path, "write_bytes", full)
        shutil.copytree(base, run)
        capsys.readouterr()
        assert run_cli(train_main, ["--resume", str(run), "--steps", "6", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "".join(err) and err[0].endswith("resuming at step 2"), err
        assert len(err) == 2 and f"could not write {run / 'checkpoint.pt'}" in err[1], err
        assert "No space left on device" in err[1] and f"'--resume {run}' continues" in err[1]
        assert load_checkpoint(run).step == 2  # the last good checkpoint
        assert not list(run.glob(".*.tmp*"))  # no partial file left to fill the disk
        saved = tmp_path / "saved"
        shutil.copytree(run, saved, ignore=shutil.ignore_patterns(".lock"))
    monkeypatch.undo()
    assert run_cli(train_main, ["--resume", str(saved), "--steps", "6", "--quiet"]) == 0
    a, b = load_checkpoint(saved), load_checkpoint(whole)
    assert a.step == b.step == 6
    for k, v in b.payload["model_state"].items():
        assert np.array_equal(a.payload["model_state"][k].numpy(), v.numpy()), k


BENCHES = ["Kriegeskorte2008.monkeyIT-rsa", "Kriegeskorte2008.humanIT-rsa"]


def test_scoring_killed_with_sigkill_loses_and_duplicates_nothing(
    tmp_path, data_root, monkeypatch, capsys
):
    """kill -9 part-way through scoring: the table holds whole pairs only and stays readable; the
    same command again scores the rest, and the table equals an uninterrupted one."""
    env = {**os.environ, "NMNC_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "brain_benchmarks.score", "--model", "random:cnn", "--quiet"]
    cmd += ["--benchmark", *BENCHES, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    table = out / "results.csv"
    deadline = time.time() + 300
    while not (table.exists() and BENCHES[0] in table.read_text()):
        assert proc.poll() is None and time.time() < deadline, "scoring ended before any rows"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    part = read_results(table)
    assert set(part.benchmark) < set(BENCHES), "killed too late: nothing was interrupted"
    for _, rows in part.groupby("benchmark"):  # whole pairs: every layer and the committed row
        assert len(rows) == 5 and rows.committed.sum() == 1
    argv = ["--model", "random:cnn", "--benchmark", *BENCHES, "--out", str(out), "--quiet"]
    monkeypatch.setenv("NMNC_CACHE", env["NMNC_CACHE"])
    assert run_cli(score_main, argv) == 0
    whole = tmp_path / "whole"
    score(ScoreConfig(("random:cnn",), tuple(BENCHES), out=str(whole), progress=False))
    assert f"skipped random:cnn on {BENCHES[0]}" in capsys.readouterr().err
    key = ["benchmark", "layer", "committed"]
    a = read_results(table).sort_values(key).reset_index(drop=True)
    b = read_results(whole / "results.csv").sort_values(key).reset_index(drop=True)
    assert not a.duplicated(key).any() and len(a) == len(b) == 10
    pd.testing.assert_series_equal(a.score, b.score)


def test_a_rerun_skips_scored_pairs_and_rescore_replaces_them(tmp_path, data_root, capsys):
    """The README's policy: the same scoring again skips what the table holds (no duplicate
    rows); --rescore scores it again and replaces its rows."""
    out = tmp_path / "s"
    argv = ["--model", "pixels", "--benchmark", BENCHES[0], "--out", str(out), "--quiet"]
    assert run_cli(score_main, argv) == 0
    table = out / "results.csv"
    first = read_results(table)
    stale = first.copy()
    stale.loc[stale.committed, "score"] = 9.99  # a row a rescore must replace
    stale.to_csv(table, index=False)
    assert run_cli(score_main, argv) == 0
    assert "skipped pixels on Kriegeskorte2008.monkeyIT-rsa" in capsys.readouterr().err
    assert read_results(table).score.max() == 9.99 and len(read_results(table)) == len(first)
    assert run_cli(score_main, [*argv, "--rescore"]) == 0
    again = read_results(table)
    assert len(again) == len(first) and 9.99 not in again.score.values
    key = ["layer", "committed"]
    assert again.sort_values(key).score.tolist() == first.sort_values(key).score.tolist()


def test_a_corrupt_image_in_a_training_set_is_named(tmp_path, monkeypatch, cifar_tree):
    from nmnc.data import load_dataset

    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    cifar_tree(tmp_path, 3, "jpg")
    bad = tmp_path / "cifar10" / "train" / "cat" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # cut off, as by a failed copy
    with pytest.raises(DataError, match=f"cannot read image {bad} "):
        load_dataset("cifar10", tmp_path)


def test_writes_into_a_read_only_folder_are_one_line(read_only):
    from nmnc.errors import WriteError
    from nmnc.io import atomic_write_text

    with pytest.raises(WriteError, match=f"could not write {read_only}/table.csv"):
        atomic_write_text(Path(read_only) / "table.csv", "a,b\n")


def _row(score: float, settings: str = "", **extra):
    from brain_benchmarks.results import ResultRow

    row = ResultRow("m", "cnn", "bp", 0, "h", "B.IT-rsa", 1, "IT", "macaque", "conv1", True, score)
    return {**row.__dict__, "settings": settings, **extra}


def test_a_full_disk_on_the_first_append_leaves_no_table(tmp_path, monkeypatch):
    from brain_benchmarks import results

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "write", full)
    path = tmp_path / "results.csv"
    with pytest.raises(DataError, match="No space left on device"):
        results.append_rows(path, [_row(0.1)])
    assert not path.exists()  # as before: no table, not an empty file that reads as broken
    monkeypatch.undo()
    results.append_rows(path, [_row(0.2)])
    assert list(read_results(path).score) == [0.2]


def test_a_pair_scored_meanwhile_by_another_process_is_not_added_twice(
    tmp_path, data_root, monkeypatch, capsys
):
    """Two identical scorings at once: the second to finish finds the pair's rows under the
    table's lock and adds nothing."""
    import brain_benchmarks.score as score_module

    out = tmp_path / "s"
    cfg = ScoreConfig(("pixels",), (BENCHES[0],), out=str(out), progress=False)
    first = score(cfg)
    monkeypatch.setattr(score_module, "scored_pairs", lambda path: {})  # read before the first
    assert len(score(cfg)) == len(first)  # scored again, as the second process would
    assert "was scored meanwhile by another process" in capsys.readouterr().err
    assert len(read_results(out / "results.csv")) == len(first)


def test_rescore_replaces_only_its_own_rows_and_keeps_extra_columns(tmp_path):
    from brain_benchmarks.results import append_rows
    from brain_benchmarks.score import same_pair

    path = tmp_path / "results.csv"
    append_rows(path, [_row(0.1, '{"a": 1}'), _row(0.2, '{"a": 2}'), _row(0.3)])
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0] + ",note"] + [t + ",mine" for t in text[1:]]) + "\n")
    append_rows(path, [_row(0.9, '{"a": 1}')], replaces=same_pair(("h", "B.IT-rsa", 1, '{"a": 1}')))
    df = read_results(path)
    assert sorted(df.score) == [0.2, 0.3, 0.9]  # only the row of that settings was replaced
    assert df.set_index("score").loc[0.2, "note"] == "mine"  # a user's column survives
    append_rows(path, [_row(0.7)], replaces=same_pair(("h", "B.IT-rsa", 1, "")))
    assert sorted(read_results(path).score) == [0.2, 0.7, 0.9]  # the row without settings


def test_the_feature_cache_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """The memory-mapped feature files are allocated before they are filled, so a full disk is
    an error naming the cache file, never a SIGBUS."""
    cache = tmp_path / "cache"
    with small_disk(cache, 256 << 10) as real:
        if not real:
            import brain_benchmarks.extract as extract_module

            def full(fd, offset, length):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(extract_module.os, "posix_fallocate", full)
        monkeypatch.setenv("NMNC_CACHE", str(cache))
        argv = ["--model", "random:cnn", "--benchmark", BENCHES[0], "--quiet"]
        assert run_cli(score_main, argv, "brain_benchmarks.score") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "No space left on device" in err[0], err
        assert f"could not write {cache}" in err[0] and not list(cache.rglob("*.tmp.npy"))


def test_a_replaced_image_with_the_same_size_and_mtime_refreshes_the_cache(
    tmp_path, monkeypatch, cifar_tree
):
    """What cp -p or rsync -a do: new content, same size and modification time."""
    from PIL import Image

    from nmnc.data import load_dataset

    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    cifar_tree(tmp_path, 2, "bmp")  # uncompressed: every image has the same size
    rng = np.random.default_rng(1)
    target = tmp_path / "cifar10" / "train" / "cat" / "0.bmp"
    load_dataset("cifar10", tmp_path)
    st = target.stat()
    new = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    other = tmp_path / "new.bmp"
    Image.fromarray(new).save(other)
    assert other.stat().st_size == st.st_size
    os.replace(other, target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    ds = load_dataset("cifar10", tmp_path)
    assert any(np.array_equal(x, new) for x in ds.train.images.numpy())


def test_a_torn_last_line_of_a_metrics_log_is_left_out(tmp_path):
    from nmnc.analysis.efficiency import read_run

    (tmp_path / "run.json").write_text('{"rule": "bp", "seed": 0, "model": "cnn"}')
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.3}\n{"step": 2, "lo')
    assert read_run(tmp_path).step.tolist() == [1]
