"""scripts/gpu_check.py on a CPU with tiny settings: a speed row for every rule, the forward passes
each floor runs, training rows, the JSON; and the one-line refusal of a CUDA check without CUDA."""

import importlib.util
import json
from pathlib import Path

import torch

from nmnc.errors import run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"

TINY = [
    *("--set", "device=cpu", "models=cnn", "batch_size=4", "P=1"),
    *("--set", "steps_bp=1", "steps_noise=1", "warmup=0", "repeats=1"),
    *("--set", "epochs=0.0001", "eval_examples=50"),  # 1 step of batch 4 per rule
]
RULES = ["bp", "vnc", "nmnc", "readout"]


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_run_writes_every_row(tmp_path, data_root, capsys):
    main = gpu_check_module().main
    argv = [*TINY, "--data-root", str(data_root), "--out", str(tmp_path)]
    assert run_cli(main, argv) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    speed, training = report["speed"], report["training"]
    assert [(r["model"], r["rule"]) for r in speed] == [("cnn", rule) for rule in RULES]
    for r in speed:
        assert r["batch"] == 4 and r["steps"] == 1 and r["peak_gpu_gb"] is None
        assert r["images_per_s"] > 0 and r["floor_ms"] > 0
        assert abs(r["step_per_floor"] - r["step_ms"] / r["floor_ms"]) < 1e-9
        # the floor: the clean pass, plus 2P antithetic copies above each of the 4 hidden layers
        noise = r["rule"] in ("vnc", "nmnc")
        assert r["passes"] == (1 + 2 * 1 * 4 if noise else 1)
        assert r.get("P") == (1 if noise else None)
    assert [r["rule"] for r in training] == RULES
    for r in training:
        assert r["steps"] == 1 and 0 <= r["test_acc"] <= 1 and r["images_per_s"] > 0
    out = capsys.readouterr().out
    assert "step/floor" in out and "test acc" in out


def test_cuda_check_without_cuda_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main = gpu_check_module().main
    assert run_cli(main, ["--set", "models=cnn"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device=cuda but CUDA is not available" in err


def test_a_row_out_of_gpu_memory_is_reported_and_the_check_goes_on(tmp_path, capsys):
    module = gpu_check_module()

    def fake(cfg, *args):
        if cfg.rule == "nmnc":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"model": cfg.model, "rule": cfg.rule, "batch": cfg.batch_size, "steps": 1}

    module.step_speed = fake
    argv = ["--set", "device=cpu", "models=resnet18", "epochs=0", "--out", str(tmp_path)]
    assert run_cli(module.main, argv) == 0
    speed = json.loads((tmp_path / "gpu_check.json").read_text())["speed"]
    assert [r["rule"] for r in speed] == RULES
    assert [r.get("error") for r in speed] == [None, None, "out of GPU memory", None]
    assert all(r["batch"] == 256 for r in speed)  # the ImageNet recipe's batch size
    assert "out of GPU memory" in capsys.readouterr().out
