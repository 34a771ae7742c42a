"""Sequence datasets: NeuroGym tasks (generated, seeded, cached) and sequential CIFAR-10."""

import subprocess
import sys

import pytest
import torch

import nmnc.data.neurogym as ng
import nmnc.data.scifar as scifar
from nmnc.data import DATASETS
from nmnc.data.sequences import ArraySplit, RowSplit, SequenceData
from nmnc.data.splits import step_generator
from nmnc.errors import DataError, NmncError, UnknownNameError

PDM = "PerceptualDecisionMaking-v0"  # fixation 100 + stimulus 2000 + decision 100 ms at dt 100
SMALL = {"seq_len": 50, "train_sequences": 16, "test_sequences": 8}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def load(settings=None, task=PDM) -> SequenceData:
    return ng.neurogym(None, settings={**SMALL, **(settings or {})}, arg=task)


def everything(split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return split.batch(torch.arange(len(split)), False, None)


def scored_steps(data: SequenceData) -> list[int]:
    return everything(data.train)[2][0].nonzero().flatten().tolist()


def test_registered():
    assert "neurogym" in DATASETS and "scifar10" in DATASETS
    assert DATASETS.get(f"neurogym:{PDM}").settings is ng.NeuroGymSettings
    assert PDM in ng.task_ids()


def test_generate_is_deterministic():
    a = ng.generate(PDM, {}, 12, 40, seed=3)
    b = ng.generate(PDM, {}, 12, 40, seed=3)
    c = ng.generate(PDM, {}, 12, 40, seed=4)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["inputs"], c["inputs"])


def test_generate_is_the_same_in_another_process(tmp_path):
    code = (
        "import sys, torch, nmnc.data.neurogym as ng;"
        f"torch.save(ng.generate({PDM!r}, {{}}, 6, 30, seed=5), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.pt")], check=True, timeout=60)
    theirs = torch.load(tmp_path / "t.pt", weights_only=True)
    ours = ng.generate(PDM, {}, 6, 30, seed=5)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_shapes_classes_and_trial_ends(cache):
    data = load()
    assert data.kind == "sequence" and data.name == f"neurogym:{PDM}"
    assert data.classes == ["fixation", "choice 1", "choice 2"] and data.num_classes == 3
    assert (data.input_dim, data.seq_len) == (3, 50)
    assert data.mean == () and data.std == () and data.input_size == 0
    assert data.source == f"neurogym 1.0.8 {PDM}"
    assert data.extra == {"task": PDM, "task_settings": {}, "dt": 100}
    assert (len(data.train), len(data.test)) == (16, 8)
    x, y, scored = everything(data.train)
    assert x.dtype == torch.float32 and x.shape == (16, 50, 3)
    assert y.dtype == torch.long and y.shape == (16, 50)
    assert scored.dtype == torch.bool and scored.shape == (16, 50)
    # every trial is 22 steps: trials end (and are scored) at steps 21 and 43; the third is cut
    assert scored.sum(1).tolist() == [2] * 16
    assert scored[:, [21, 43]].all()
    assert (y[scored] >= 1).all()  # the decision: a choice, never fixation
    assert (x[:, :, 0][scored] == 0).all() and (x[:, [20, 42], 0] == 1).all()  # fixation cue off
    assert (y[:, :21] == 0).all()
    labels = data.train.labels
    assert labels.dtype == torch.long and torch.equal(labels, y[:, 21])
    assert not torch.equal(everything(data.test)[0], x[:8])  # the test split has other trials


def test_task_settings_change_the_trials(cache):
    assert scored_steps(load({"dt": 50})) == [43]  # 44 steps a trial
    fast = load({"timing.stimulus": "500"})  # 1 + 5 + 1 steps a trial
    assert scored_steps(fast) == [6, 13, 20, 27, 34, 41, 48]
    assert fast.extra["task_settings"] == {"timing": {"stimulus": 500}}
    assert load({"dt": "50"}).extra["dt"] == 50
    assert load({"dim_ring": 4}).classes == ["fixation"] + [f"choice {i}" for i in range(1, 5)]


def test_seed_changes_the_data(cache):
    a, b = load({"seed": 1}), load({"seed": "2"})
    assert not torch.equal(a.train.inputs, b.train.inputs)
    assert torch.equal(a.train.inputs, load({"seed": 1}).train.inputs)


def test_cache_hit_and_damaged_cache(cache, monkeypatch):
    first = load()
    files = sorted((cache / "neurogym").glob("*.pt"))
    assert len(files) == 2  # train and test

    def refuse(*a, **k):
        raise AssertionError("generated again")

    real = ng.generate
    monkeypatch.setattr(ng, "generate", refuse)
    again = load()
    assert torch.equal(again.train.inputs, first.train.inputs)
    assert torch.equal(again.test.scored, first.test.scored)

    calls = []
    monkeypatch.setattr(ng, "generate", lambda *a, **k: calls.append(a) or real(*a, **k))
    files[0].write_bytes(b"not a tensor file")
    files[1].write_bytes(files[1].read_bytes()[:100])  # cut off
    rebuilt = load()
    assert len(calls) == 2
    assert torch.equal(rebuilt.train.inputs, first.train.inputs)
    assert torch.equal(rebuilt.test.targets, first.test.targets)
    load()
    assert len(calls) == 2  # the rewritten files are read again


def test_unknown_task_lists_the_closest():
    with pytest.raises(UnknownNameError, match=f"did you mean '{PDM}'"):
        ng.split_settings("PerceptualDecisionMakin-v0", {})


def test_unknown_keys():
    with pytest.raises(UnknownNameError) as err:
        ng.split_settings(PDM, {"sigmaa": 1})
    msg = str(err.value)
    assert "did you mean 'sigma'" in msg and "seq_len" in msg and "timing" in msg and PDM in msg
    with pytest.raises(UnknownNameError, match="did you mean 'stimulus'"):
        ng.split_settings(PDM, {"timing.stimulu": 500})
    with pytest.raises(NmncError, match="not a table"):
        ng.split_settings(PDM, {"sigma.x": 1})


def test_bad_values_are_one_line():
    for settings, match in [
        ({"seq_len": 0}, "at least 1"),
        ({"train_sequences": "many"}, "not a valid int"),
        ({"seed": 1.5}, "not a valid int"),
        ({"dim_ring": "abc"}, "rejected"),
        ({"timing.stimulus": "abc"}, "rejected"),
    ]:
        with pytest.raises(NmncError, match=match) as err:
            ng.split_settings(PDM, settings)
        assert "\n" not in str(err.value)


def test_settings_are_parsed():
    ours, kwargs = ng.split_settings(
        PDM, {"seq_len": "7", "sigma": "0.5", "cohs": "0,12.8", "rewards.correct": "2"}
    )
    assert ours == ng.NeuroGymSettings(seq_len=7)
    assert kwargs == {"sigma": 0.5, "cohs": [0, 12.8], "rewards": {"correct": 2}}
    _, kwargs = ng.split_settings(PDM, {"timing": {"stimulus": "300"}, "timing.decision": 200})
    assert kwargs == {"timing": {"stimulus": 300, "decision": 200}}


def test_tasks_without_class_targets_are_refused():
    assert "ReachingDelayResponse-v0" in ng.task_ids()  # a Box (continuous) action space
    with pytest.raises(NmncError, match="only tasks with discrete actions"):
        ng.split_settings("ReachingDelayResponse-v0", {})
    with pytest.raises(NmncError, match="no ground truth"):  # a reward-only task
        ng.split_settings("Bandit-v0", {})


def test_needs_a_task_and_trials_that_fit(cache):
    with pytest.raises(NmncError, match="needs a task"):
        ng.neurogym(None, settings={})
    with pytest.raises(NmncError, match="no trial .* ends within seq_len=10"):
        load({"seq_len": 10})  # a trial is 22 steps: nothing could be scored
    assert not list(cache.glob("neurogym/*.pt"))


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "neurogym", None)
    with pytest.raises(DataError, match="pip install neurogym==1.0.8"):
        ng.task_ids()


def test_array_split_loader():
    g = ng.generate(PDM, {}, 10, 30, seed=0)
    split = ArraySplit(**g)
    batches = [(0, torch.tensor([3, 1])), (1, torch.tensor([0]))]
    got = list(split.loader(batches, augment=True, seed=0))
    assert len(got) == 2
    x, y, scored = got[0]
    assert torch.equal(x, g["inputs"][[3, 1]]) and torch.equal(y, g["targets"][[3, 1]])
    assert torch.equal(scored, g["scored"][[3, 1]])


# sequential CIFAR-10


@pytest.mark.data
def test_rows_are_the_image_rows(cifar_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    root = cifar_tree(tmp_path / "data", per_class=3)
    data = scifar.scifar10(root)
    assert data.kind == "sequence" and (data.input_dim, data.seq_len) == (96, 32)
    assert data.classes[0] == "airplane" and data.num_classes == 10
    assert len(data.train) == 6 and torch.equal(data.train.labels, data.train.images.labels)
    idx = torch.arange(6)
    x, y, scored = data.train.batch(idx, False, None)
    assert x.shape == (6, 32, 96) and x.dtype == torch.float32
    img, label = data.train.images.batch(idx, False, None)  # (B, 3, 32, 32) normalised
    for b, r, c, ch in [(0, 0, 0, 0), (1, 5, 7, 2), (5, 31, 31, 1), (3, 12, 30, 0)]:
        assert x[b, r, 3 * c + ch] == img[b, ch, r, c]
    assert torch.equal(x, img.permute(0, 2, 3, 1).reshape(6, 32, 96))
    # the raw pixels, row by row
    raw = data.train.images.images[idx].float() / 255  # (B, H, W, 3)
    mean, std = data.train.images.mean.flatten(), data.train.images.std.flatten()
    assert torch.allclose(x.view(6, 32, 32, 3) * std + mean, raw, atol=1e-6)
    assert (y[:, :-1] == -1).all() and torch.equal(y[:, -1], label)
    assert scored[:, -1].all() and not scored[:, :-1].any()
    again = data.train.batch(idx, False, step_generator(0, 1))
    assert torch.equal(again[0], x)
    aug = [data.train.batch(idx, True, step_generator(0, 1)) for _ in range(2)]
    ref, _ = data.train.images.batch(idx, True, step_generator(0, 1))
    assert torch.equal(aug[0][0], aug[1][0]) and not torch.equal(aug[0][0], x)
    assert torch.equal(aug[0][0], ref.permute(0, 2, 3, 1).reshape(6, 32, 96))
    first = next(data.test.loader([(4, idx[:2])], augment=False, seed=0))
    assert torch.equal(first[0], data.test.batch(idx[:2], False, None)[0])


def test_scifar_refuses_settings(tmp_path):
    with pytest.raises(NmncError, match="scifar10 has no settings"):
        scifar.scifar10(tmp_path, settings={"seq_len": 5})
    with pytest.raises(NmncError, match="takes no"):
        scifar.scifar10(tmp_path, arg="x")


def test_rows_of_the_real_cifar10(cifar):
    rows = RowSplit(cifar.test)
    assert len(rows) == 10000 and torch.equal(rows.labels, cifar.test.labels)
    idx = torch.tensor([0, 17, 9999])
    x, y, scored = rows.batch(idx, False, None)
    img, label = cifar.test.batch(idx, False, None)
    assert torch.equal(x, img.permute(0, 2, 3, 1).reshape(3, 32, 96))
    assert x[1, 9, 3 * 20 + 2] == img[1, 2, 9, 20]
    assert torch.equal(y[:, -1], label) and (y[:, :-1] == -1).all()
    assert scored.sum().item() == 3 and scored[:, -1].all()
