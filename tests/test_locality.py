"""Every weight layer is trained from its own stage alone: no stage holds two weight layers in
series, a stage's graph (with detached inputs) reaches only its own parameters, and the network
above a hidden layer, skip connections included, is what the noise rules correlate with."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmnc.engine.perturb import correlate, correlate_all, output_error
from nmnc.errors import NmncError
from nmnc.models import MODELS, StagedNet, build_model
from nmnc.models._base import INPUT
from nmnc.rules import build_rule

WEIGHTS = (nn.modules.conv._ConvNd, nn.Linear)


def tiny(name: str, **kw) -> StagedNet:
    """A registered model at a small width (the layout, not the size, is under test)."""
    torch.manual_seed(0)
    return build_model(name, width=0.0625 if name == "alexnet" else 0.125, **kw)


def images(model: StagedNet, B: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, model.input_size, model.input_size, generator=g)


def weight_layers_in_series(model: StagedNet, name: str, acts: dict) -> list[tuple[str, str]]:
    """Pairs (a, b) of weight layers inside stage ``name`` where b's input depends on a's
    parameters."""
    stage = model.stage(name)
    weights = {n: m for n, m in stage.named_modules() if isinstance(m, WEIGHTS)}
    seen = {}
    hooks = [
        m.register_forward_pre_hook(lambda _m, inp, n=n: seen.__setitem__(n, inp[0]))
        for n, m in weights.items()
    ]
    try:
        stage(*(t.detach() for t in model.stage_inputs(name, acts)))
    finally:
        for h in hooks:
            h.remove()
    assert set(seen) == set(weights), f"stage {name}: a weight layer did not run"
    pairs = []
    for b, inp in seen.items():
        if not inp.requires_grad:
            continue  # a function of the stage's (detached) inputs only
        for a, module in weights.items():
            grads = torch.autograd.grad(
                inp.sum(), list(module.parameters()), allow_unused=True, retain_graph=True
            )
            if a != b and any(g is not None for g in grads):
                pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("arch", MODELS.names(kind=""))
def test_no_stage_holds_two_weight_layers_in_series(arch):
    model = tiny(arch).train()
    x = images(model)
    outs, _ = model.walk(x)
    acts = {INPUT: x, **outs}
    for name in model.stage_names:
        n_weights = sum(isinstance(m, WEIGHTS) for m in model.stage(name).modules())
        assert n_weights >= 1, f"stage {name} has no weight layer"
        assert weight_layers_in_series(model, name, acts) == [], name


def test_series_check_catches_two_weight_layers_in_one_stage():
    net = StagedNet(
        [
            ("deep", nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 4))),
            ("out", nn.Linear(4, 3)),
        ],
        input_size=2,
    )
    x = torch.randn(2, 3, 2, 2)
    assert weight_layers_in_series(net, "deep", {INPUT: x}) == [("1", "3")]


def test_resnet_has_a_hidden_layer_per_convolution():
    model = tiny("resnet")
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    shortcuts = [n for n in convs if n.endswith("s.0")]
    assert len(convs) == 20 and len(shortcuts) == 3  # stem, 16 block convs, 3 1x1 shortcuts
    # every conv, the 1x1 shortcuts included, is the weight layer of its own hidden layer
    owner = {n.split(".")[0] for n in convs}
    assert len(model.hidden_layers) == len(convs) == 20 and owner == set(model.hidden_layers)
    assert model.hidden_layers[:5] == ["stem", "layer1_0a", "layer1_0b", "layer1_1a", "layer1_1b"]
    assert model.sources["layer1_0b"] == ("layer1_0a", "stem")  # identity skip
    assert model.sources["layer2_0s"] == ("layer1_1b",)  # the 1x1 shortcut reads the block input
    assert model.sources["layer2_0b"] == ("layer2_0a", "layer2_0s")


@pytest.mark.parametrize("arch", MODELS.names(kind=""))
def test_detached_stage_graph_reaches_only_its_own_parameters(arch):
    model = tiny(arch).train()
    outs, logits = model.walk(images(model), detach_inputs=True)
    outs[model.stage_names[-1]] = logits
    params = dict(model.named_parameters())
    for name, out in outs.items():
        grads = torch.autograd.grad(
            out.sum(), list(params.values()), allow_unused=True, retain_graph=True
        )
        reached = {n for n, g in zip(params, grads) if g is not None}
        own = {f"{name}.{n}" for n, _ in model.stage(name).named_parameters()}
        assert reached == own, name


def test_resnet_forward_from_with_context_gives_the_logits():
    model = tiny("resnet", input_size=16).eval()
    x = images(model, B=3)
    with torch.no_grad():
        outs, logits = model.walk(x)
        for layer in model.hidden_layers:
            assert torch.allclose(model.forward_from(layer, outs[layer], outs), logits, atol=1e-5)
            # m copies of the batch, B innermost: context is repeated to match
            copies = outs[layer].repeat(2, 1, 1, 1)
            assert torch.allclose(
                model.forward_from(layer, copies, outs), logits.repeat(2, 1), atol=1e-5
            )
    with pytest.raises(NmncError, match=r"forward_from\('layer1_0a'\) needs context.*stem"):
        model.forward_from("layer1_0a", outs["layer1_0a"])
    with pytest.raises(NmncError, match="not a multiple"):
        model.forward_from("layer1_0a", outs["layer1_0a"][:2], outs)


def test_taps_on_a_stage_reach_its_skip_connection_readers():
    model = tiny("resnet", input_size=16).eval()
    x = images(model)
    with torch.no_grad():
        outs, _ = model.walk(x)
        silenced = {**outs, "layer1_0b": torch.zeros_like(outs["layer1_0b"])}
        want = model.forward_from("layer1_0b", silenced["layer1_0b"], silenced)
        from nmnc.engine.taps import inject

        with inject(model, {"layer1_0b": torch.zeros_like}):
            got = model.forward_from("layer1_0a", outs["layer1_0a"], outs)
            assert torch.allclose(model(x), want, atol=1e-6)
    assert torch.allclose(got, want, atol=1e-6)


def activity_grads(model, outs, e):
    """Exact J_l^T e for every hidden layer, by autograd through forward_from with context."""
    out = {}
    for name in model.hidden_layers:
        h = outs[name].clone().requires_grad_()
        out[name] = torch.autograd.grad((model.forward_from(name, h, outs) * e).sum(), h)[0]
    return out


def linearised(xis, variances, grads):
    """The estimate noise correlation gives for a linear network above the layers:
    g_hat_l = (1/P) sum_p xi_lp (sum_m <xi_mp, g_m>) / var_l, with the same noise."""
    s = sum((xi * grads[n].unsqueeze(0)).flatten(2).sum(-1) for n, xi in xis.items())  # (P, B)
    P = next(iter(xis.values())).shape[0]
    return {n: torch.einsum("pb,pb...->b...", s, xi) / (P * variances[n]) for n, xi in xis.items()}


def off_kinks(model: StagedNet) -> StagedNet:
    """Random BatchNorm shifts: at init a block whose branch is all zero passes the exact zeros of
    the ReLU below it through the skip into the next ReLU, right on its kink, where noise sees half
    the slope that autograd takes."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.bias.data = 0.1 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype)
    return model


@pytest.fixture(scope="module")
def resnet64():
    """A tiny ResNet in float64 with frozen BatchNorm, its activities, error and exact gradients."""
    model = off_kinks(tiny("resnet", input_size=8).double().eval())
    x = images(model, B=3).double()
    y = torch.tensor([1, 4, 7])
    with torch.no_grad():
        outs, logits = model.walk(x)
    e = output_error(logits, y).double()
    return model, outs, e, y, activity_grads(model, outs, e)


def test_layerwise_estimates_on_resnet_are_the_exact_gradients_correlation(resnet64):
    model, outs, e, _, grads = resnet64
    g, sigma, P = torch.Generator().manual_seed(0), 1e-7, 4
    for name in model.hidden_layers:
        h = outs[name]
        xi = sigma * torch.randn(P, *h.shape, generator=g, dtype=h.dtype)
        # max_batch 7 with B = 3: chunks of two whole copies of the batch, so context lines up
        est = correlate(
            lambda z, name=name: model.forward_from(name, z, outs), h, xi, sigma**2, e, max_batch=7
        )
        want = linearised({name: xi}, {name: sigma**2}, grads)[name]
        torch.testing.assert_close(est, want, rtol=1e-5, atol=1e-5 * want.abs().max())


def test_all_layers_at_once_on_resnet_is_the_exact_gradients_correlation(resnet64):
    model, outs, e, _, grads = resnet64
    g, P = torch.Generator().manual_seed(1), 4
    layers = model.hidden_layers[1:]  # from layer1_0a: layer1_0b reads the stem from context
    variances = {n: (1e-7 * (1 + i)) ** 2 for i, n in enumerate(layers)}
    xis = {
        n: variances[n] ** 0.5 * torch.randn(P, *outs[n].shape, generator=g, dtype=e.dtype)
        for n in layers
    }
    hs = {n: outs[n] for n in layers}
    for antithetic in (True, False):
        est = correlate_all(
            model, layers, hs, xis, variances, e, antithetic=antithetic, context=outs
        )
        want = linearised(xis, variances, {n: grads[n] for n in layers})
        for n in layers:
            tol = 1e-4 if antithetic else 1e-2  # one-sided differences carry O(sigma) bias
            torch.testing.assert_close(est[n], want[n], rtol=tol, atol=tol * want[n].abs().max())
    with pytest.raises(NmncError, match="needs context"):
        correlate_all(model, layers, hs, xis, variances, e)


@pytest.mark.parametrize("rule_name,mode", [("vnc", "layerwise"), ("vnc", "all"), ("nmnc", "all")])
def test_rule_estimates_on_resnet_match_the_exact_gradients(rule_name, mode):
    """The rule's estimate (fp32) is the correlation of its own noise with the exact J^T e."""
    model = off_kinks(tiny("resnet", input_size=8).eval())
    x, y = images(model, B=3), torch.tensor([0, 3, 9])
    extra = {"k": 4} if rule_name == "nmnc" else {}
    rule = build_rule(rule_name, model, P=3, sigma=1e-3, mode=mode, **extra)
    with torch.no_grad():
        outs, logits = model.walk(x)
    rule.observe({n: outs[n] for n in rule.layers})
    e = output_error(logits, y)
    acts = {n: outs[n] for n in rule.layers}
    est = rule.estimate(acts, e, y, torch.Generator().manual_seed(0), context=outs)
    g = torch.Generator().manual_seed(0)
    draws = {n: rule.noise(n, acts[n], g) for n in rule.layers}  # the same noise, replayed
    grads = activity_grads(model, outs, e)
    if mode == "all":
        want = linearised(
            {n: d[0] for n, d in draws.items()}, {n: d[1] for n, d in draws.items()}, grads
        )
    else:
        want = {n: linearised({n: d[0]}, {n: d[1]}, grads)[n] for n, d in draws.items()}
    for n in rule.layers:
        cos = F.cosine_similarity(est[n].flatten(), want[n].flatten(), dim=0)
        assert cos > 0.999, (n, float(cos))


@pytest.mark.parametrize("rule_name", ["vnc", "nmnc"])
@pytest.mark.parametrize("mode", ["layerwise", "all"])
def test_noise_steps_on_resnet_update_only_the_perturbed_stages(rule_name, mode):
    model = tiny("resnet", input_size=16).train()
    x, y = images(model, B=4), torch.tensor([0, 1, 2, 3])
    extra = {"k": 2} if rule_name == "nmnc" else {}
    chosen = ["layer1_0a", "layer2_0b"]  # a first stage, and a join with a shortcut conv
    rule = build_rule(rule_name, model, P=2, mode=mode, layers=",".join(chosen), **extra)
    seen = []
    hooks = [
        model.stage(n).register_forward_pre_hook(
            lambda _m, inp: seen.extend(t.requires_grad for t in inp)
        )
        for n in model.stage_names
    ]
    res = rule.step(x, y, torch.Generator().manual_seed(0))
    for h in hooks:
        h.remove()
    assert torch.isfinite(res.loss) and not any(seen)  # every stage input detached, every pass
    allowed = tuple(f"{n}." for n in [*chosen, "fc"])
    for n, p in model.named_parameters():
        changed = p.grad is not None and torch.count_nonzero(p.grad) > 0
        assert changed == n.startswith(allowed), n
        if changed:
            assert torch.isfinite(p.grad).all(), n
