import pytest
import torch
import torch.nn.functional as F

from nmnc.checkpoint import load_checkpoint
from nmnc.errors import UnknownNameError
from nmnc.models import build_model
from nmnc.rules import build_rule


def batch(seed=0, B=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, 32, 32, generator=g), torch.randint(0, 10, (B,), generator=g)


def exact_activity_grads(model, acts, y):
    out = {}
    for name, h in acts.items():
        h = h.clone().requires_grad_()
        loss = F.cross_entropy(model.forward_from(name, h), y)
        out[name] = torch.autograd.grad(loss, h)[0]
    return out


@pytest.mark.parametrize("rule_name,norm", [("vnc", "none"), ("nmnc", "none"), ("nmnc", "bn")])
def test_local_updates_with_exact_activity_gradients_equal_backprop(rule_name, norm):
    """Fed the true activity gradients, the local per-layer updates reproduce backprop exactly:
    the weight update is the layer's own vector-Jacobian product and nothing else."""
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25, norm=norm)
    x, y = batch()
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    bp = {n: p.grad.clone() for n, p in model.named_parameters()}
    rule = build_rule(rule_name, model, P=2)
    rule.estimate = lambda acts, e, y_, gen, context=None: (
        exact_activity_grads(model, acts, y_) if norm == "none" else exact_bn(model, acts, y_)
    )
    model.zero_grad()
    rule.step(x, y, torch.Generator().manual_seed(0))
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, bp[n], rtol=1e-4, atol=1e-6), n


def exact_bn(model, acts, y):
    # with BatchNorm in training mode the exact gradient also flows through batch statistics
    out = {}
    names = list(acts)
    hs = {n: acts[n].clone().requires_grad_() for n in names}
    for i, n in enumerate(names):
        h = hs[n]
        for m in model.stage_names[model.stage_names.index(n) + 1 :]:
            h = model.stage(m)(h)
        out[n] = torch.autograd.grad(F.cross_entropy(h, y), hs[n])[0]
    return out


def test_no_gradient_flows_between_layers():
    model = build_model("cnn", width=0.25)
    rule = build_rule("nmnc", model, P=2, k=4)
    seen = []
    hooks = [
        model.stage(n).register_forward_pre_hook(lambda m, inp: seen.append(inp[0].requires_grad))
        for n in model.stage_names[1:]
    ]
    x, y = batch()
    rule.step(x, y, torch.Generator().manual_seed(0))
    for h in hooks:
        h.remove()
    # every stage above the first received a detached input, in the clean and the perturbed passes
    assert seen and not any(seen)
    # and a layer whose estimate is zero gets exactly zero weight gradient
    model.zero_grad()
    real = rule.estimate
    rule.estimate = lambda acts, e, y_, gen, context=None: {
        n: (g if n == "conv3" else torch.zeros_like(g))
        for n, g in real(acts, e, y_, gen, context).items()
    }
    rule.step(x, y, torch.Generator().manual_seed(1))
    for n, p in model.named_parameters():
        if n.startswith(("conv1", "conv2", "conv4")):
            assert torch.count_nonzero(p.grad) == 0, n
    assert torch.count_nonzero(model.conv3[0].weight.grad) > 0


def test_perturbed_passes_leave_batchnorm_statistics_alone():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25, norm="bn").train()
    ref = build_model("cnn", width=0.25, norm="bn").train()
    ref.load_state_dict(model.state_dict())
    x, y = batch()
    build_rule("vnc", model, P=4).step(x, y, torch.Generator().manual_seed(0))
    ref(x)  # one clean training-mode pass updates running statistics once
    for (n, a), b in zip(model.named_buffers(), ref.buffers()):
        assert torch.allclose(a.float(), b.float()), n


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": "all"},
        {"form": "loss"},
        {"antithetic": False},
        {"space": "channel", "k": 4},
        {"estimator": "oja", "k": 4},
        {"estimator": "ema", "space": "channel", "k": 4},
        {"k_rule": "pr"},
        {"layers": "conv2,conv4"},
    ],
)
def test_nmnc_variants_step(settings):
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25)
    rule = build_rule("nmnc", model, P=2, **settings)
    x, y = batch()
    res = rule.step(x, y, torch.Generator().manual_seed(0))
    assert torch.isfinite(res.loss) and res.perturbations > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_estimates_point_the_right_way_on_a_real_network():
    """On the cnn at initialisation, VNC and NMNC estimates have positive cosine with the true
    gradient."""
    torch.manual_seed(0)
    model = build_model("cnn", width=0.5)
    x, y = batch(B=32)
    for name, extra in (("vnc", {}), ("nmnc", {"k": 16})):
        rule = build_rule(name, model, P=64, sigma=0.01, **extra)
        acts, h = {}, x
        with torch.no_grad():
            for n in model.hidden_layers:
                h = model.stage(n)(h)
                acts[n] = h
            logits = model.stage("fc")(h)
        from nmnc.engine.perturb import output_error

        rule.observe(acts)
        est = rule.estimate(acts, output_error(logits, y), y, torch.Generator().manual_seed(0))
        true = exact_activity_grads(model, acts, y)
        c = F.cosine_similarity(est["conv4"].flatten(), true["conv4"].flatten(), dim=0)
        assert c > 0.1, (name, c)


def test_bad_rule_settings():
    model = build_model("cnn", width=0.25)
    with pytest.raises(UnknownNameError, match="did you mean 'layerwise'"):
        build_rule("vnc", model, mode="layerwis")
    with pytest.raises(UnknownNameError, match="unknown layer 'conv7'"):
        build_rule("nmnc", model, layers="conv7")
    with pytest.raises(UnknownNameError, match="manifold estimator"):
        build_rule("nmnc", model, estimator="ica")


def test_nmnc_training_resumes_exactly_with_manifold_state(tmp_path, data_root):
    from nmnc.errors import run_cli
    from nmnc.train import main
    from nmnc.training.trainer import resume

    args = [
        "--rule",
        "nmnc",
        "--train-examples",
        "320",
        "--batch-size",
        "32",
        "--steps",
        "12",
        "--quiet",
        "--set",
        "width=0.25",
        "P=2",
        "k=4",
        "refresh=5",
        "buffer=64",
        "ckpt_every=4",
        "eval_every=12",
        "eval_examples=100",
    ]
    assert run_cli(main, ["--out", str(tmp_path / "a"), *args]) == 0
    from nmnc.training.trainer import Run, config_from_checkpoint

    ck = load_checkpoint(tmp_path / "a")
    assert ck.rule_state["manifolds"]["conv1"]["U"].shape == (4 * 32 * 32, 4)
    assert ck.counters["perturbations"] == 12 * 32 * 2 * 4
    run = Run(config_from_checkpoint(ck, out=str(tmp_path / "b")), progress=False)
    run.train(stop_after=6)  # checkpoint at step 4; steps 5-6 are lost as in a crash
    resume(tmp_path / "b", progress=False)
    a, b = ck.model_state, load_checkpoint(tmp_path / "b").model_state
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_perturbed_passes_run_in_fp32_under_bf16_autocast(cifar):
    """NMNC's conv1 estimate under bf16 autocast matches the fp32 estimate from the same noise;
    run through bf16, the same perturbed passes lose much of it (the artefact this prevents)."""
    import torch.nn.functional as F

    from nmnc.engine.perturb import correlate, frozen_norm, output_error

    torch.manual_seed(0)
    x, y = cifar.train.batch(torch.arange(32), False, None)
    model = build_model("cnn").eval()
    rule = build_rule("nmnc", model, P=16, k=8)
    with torch.no_grad():
        outs, logits = model.walk(x)
        rule.observe({n: outs[n] for n in rule.layers})
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs16, logits16 = model.walk(x)

    def gen():
        return torch.Generator().manual_seed(1)

    g32 = rule.estimate({n: outs[n] for n in rule.layers}, output_error(logits, y), y, gen())
    e16 = output_error(logits16, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g16 = rule.estimate({n: outs16[n] for n in rule.layers}, e16, y, gen())
        h = outs16["conv1"]
        xi, var = rule.noise("conv1", h.float(), gen())
        with frozen_norm(model):  # the same passes left under bf16
            lossy = correlate(
                lambda z: model.forward_from("conv1", z), h, xi.to(h.dtype), var, e16, y
            )
    cos = {n: F.cosine_similarity(g32[n].flatten(), g16[n].flatten(), dim=0).item() for n in g32}
    assert all(g.dtype == torch.float32 for g in g16.values())
    assert min(cos.values()) >= 0.99, cos
    lossy_cos = F.cosine_similarity(g32["conv1"].flatten(), lossy.float().flatten(), dim=0).item()
    assert lossy_cos < 0.95, lossy_cos


def test_readout_control_trains_only_the_readout(tmp_path, data_root):
    """The read-out-only rule leaves every hidden parameter exactly at initialisation (weight decay
    and momentum included) and trains the read-out."""
    from nmnc.config import TrainConfig, build_config
    from nmnc.training import Run

    sets = {
        "width": 0.25,
        "steps": 6,
        "train_examples": 192,
        "batch_size": 32,
        "eval_every": 6,
        "eval_examples": 100,
    }
    run = Run(
        build_config(TrainConfig(rule="readout", out=str(tmp_path / "r")), sets), progress=False
    )
    init = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.train()
    after = run.model.state_dict()
    readout = run.model.stage_names[-1]
    for k, v in after.items():
        if k.startswith(readout + "."):
            assert not torch.equal(v, init[k]), k
        else:
            assert torch.equal(v, init[k]), k
