"""Matched conditions between rules: BatchNorm statistics in perturbed passes, energy-matched VNC,
amortised feedback, clipping that never touches the read-out, separate read-out learning rate."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmnc.config import TrainConfig
from nmnc.engine.norm import capture_batch_stats, clean_stats
from nmnc.engine.perturb import frozen_norm, output_error
from nmnc.errors import NmncError
from nmnc.models import build_model
from nmnc.models._base import StagedNet
from nmnc.rules import build_rule
from nmnc.training.trainer import clip_hidden, param_groups


def batch(seed=0, B=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, 32, 32, generator=g), torch.randint(0, 10, (B,), generator=g)


def test_perturbed_passes_normalise_with_the_clean_batch_statistics():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25, norm="bn").train()
    x, _ = batch()
    with capture_batch_stats(model) as stats:
        outs, logits = model.walk(x)
    assert len(stats) == 4
    with torch.no_grad(), clean_stats(model, stats):
        again = model.forward_from("conv1", outs["conv1"])
    torch.testing.assert_close(again, logits, rtol=1e-4, atol=1e-5)
    with torch.no_grad(), frozen_norm(model):  # running statistics: a different network
        running = model.forward_from("conv1", outs["conv1"])
    assert (running - logits).abs().max() > 1e-2
    assert all(m.training for m in model.modules())  # modes restored


def test_clean_statistics_are_restored_when_a_perturbed_pass_fails():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25, norm="bn").train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    x, _ = batch()
    with capture_batch_stats(model) as stats, torch.no_grad():
        model(x)
    running = {n: b.clone() for n, b in model.named_buffers()}
    assert any(not torch.equal(running[n], before[n]) for n in before)  # the clean pass updated
    with pytest.raises(RuntimeError, match="boom"), clean_stats(model, stats):
        assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        raise RuntimeError("boom")
    for n, b in model.named_buffers():
        assert torch.equal(b, running[n]), n
    assert all(m.training for m in model.modules())


def test_vnc_is_energy_matched_by_default_and_unmatched_by_name():
    model = build_model("cnn", width=0.25)
    h = torch.zeros(2, 4, 32, 32)
    n = h[0].numel()
    gen = torch.Generator().manual_seed(0)
    xi, var = build_rule("vnc", model, P=64).noise("conv1", h, gen)
    assert var == pytest.approx(0.05**2 * 32 / n)
    assert xi.std().item() == pytest.approx(math.sqrt(var), rel=0.02)
    # total energy per perturbation equals NMNC's at k = 32: sigma^2 k
    assert (xi**2).sum((2, 3, 4)).mean().item() == pytest.approx(0.05**2 * 32, rel=0.02)
    xi_u, var_u = build_rule("vnc-unmatched", model, P=4).noise("conv1", h, gen)
    assert var_u == pytest.approx(0.05**2) and xi_u.std().item() == pytest.approx(0.05, rel=0.02)


def linear_net(seed=0):
    torch.manual_seed(seed)
    stages = [("l1", nn.Sequential(nn.Flatten(), nn.Linear(12, 16))), ("l2", nn.Linear(16, 8))]
    net = StagedNet(stages + [("fc", nn.Linear(8, 5))], input_size=2)
    return net


def test_amortised_feedback_recovers_a_fixed_jacobian():
    """In a linear network every example shares one Jacobian, so the amortised estimate J_bar^T e
    converges to the true activity gradient as the average folds in more steps."""
    model = linear_net()
    x = torch.randn(16, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(2))
    rule = build_rule("vnc", model, P=32, sigma=0.1, match_k=0, feedback="amortised")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        outs, logits = model.walk(x)
    e = output_error(logits, y)
    for _ in range(30):
        est = rule.estimate(dict(outs), e, y, gen)
    h = outs["l1"].clone().requires_grad_()
    true = torch.autograd.grad(F.cross_entropy(model.forward_from("l1", h), y), h)[0]
    cos = F.cosine_similarity(est["l1"].flatten(), true.flatten(), dim=0)
    assert cos > 0.95
    # the scale too (division by P * B * var, bias-corrected average): not only the direction
    assert est["l1"].norm() / true.norm() == pytest.approx(1, abs=0.15)
    # per-example estimates at the same P are far noisier
    single = build_rule("vnc", model, P=32, sigma=0.1, match_k=0).estimate(dict(outs), e, y, gen)
    assert F.cosine_similarity(single["l1"].flatten(), true.flatten(), dim=0) < cos
    # the average is part of the rule's state (resumes exactly)
    state = rule.state_dict()
    again = build_rule("vnc", model, P=32, sigma=0.1, match_k=0, feedback="amortised")
    again.load_state_dict(state)
    torch.testing.assert_close(again.feedback["l1"].J, rule.feedback["l1"].J)


def test_amortised_feedback_refuses_settings_it_cannot_use():
    model = build_model("cnn", width=0.25)
    with pytest.raises(NmncError, match="feedback=amortised needs mode=layerwise"):
        build_rule("nmnc", model, feedback="amortised", mode="all")
    with pytest.raises(NmncError, match="feedback"):
        build_rule("nmnc", model, feedback="average")


def test_clipping_never_touches_the_readout_and_readout_has_its_own_lr():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25)
    x, y = batch()
    (100 * F.cross_entropy(model(x), y)).backward()
    fc = [p.grad.clone() for p in model.fc.parameters()]
    clip_hidden(model, 0.01)
    for name in model.hidden_layers:
        norm = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in model.stage(name).parameters()])
        )
        assert norm <= 0.01 + 1e-6, name
    for p, g in zip(model.fc.parameters(), fc):
        assert torch.equal(p.grad, g)
    groups = param_groups(model, TrainConfig(lr=0.01, readout_lr=0.2))
    assert [(g["name"], g["lr"]) for g in groups] == [("hidden", 0.01), ("readout", 0.2)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.fc.parameters()}
    assert param_groups(model, TrainConfig(lr=0.03))[1]["lr"] == 0.03  # 0 = same as lr


def test_amortised_feedback_and_clean_statistics_on_the_residual_network():
    """Skip connections read clean context in the amortised passes too, and BatchNorm above a
    perturbed layer normalises with the clean batch's statistics."""
    torch.manual_seed(0)
    model = build_model("resnet", width=0.125).train()
    x, y = batch(B=4)
    rule = build_rule("nmnc", model, P=2, k=4, feedback="amortised", layers="layer1_0a,layer2_0b")
    res = rule.step(x, y, torch.Generator().manual_seed(0))
    assert torch.isfinite(res.loss)
    assert all(f.updates == 1 for f in rule.feedback.values())
    assert len(rule.stats) == len([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert {n.split(".")[0] for n in grads} == {"layer1_0a", "layer2_0b", "fc"}
