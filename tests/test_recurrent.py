"""Recurrent networks: the closed-form gradient of a linear RNN, the local update through time, and
the statistics of VNC and NMNC through time (design notes: Beta law of the cosine)."""

import math

import pytest
import torch
from scipy import stats

from nmnc.engine.through_time import correlate_through_time
from nmnc.errors import NmncError
from nmnc.models import build_model
from nmnc.objective import loss, output_error
from nmnc.rules import build_rule

T, N_IN, N, C = 5, 3, 8, 4  # steps, inputs, hidden units, classes


def linear_rnn(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("rnn", inputs=N_IN, hidden=N, num_classes=C, nonlinearity="linear")
    return model.double()


def sequences(B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, N_IN, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, T), generator=g)
    y[:, 0] = -1  # a step without a target
    return x, y


def closed_form(model, e: torch.Tensor) -> torch.Tensor:
    """dL/dh_t of a linear Elman RNN: sum_{s >= t} (W^T)^(s-t) V^T e_s, for errors e (B, T, C)."""
    W, V = model.rnn.recurrent.weight.detach(), model.readout.weight.detach()
    g = torch.zeros(e.shape[0], T, N, dtype=e.dtype)
    carry = torch.zeros(e.shape[0], N, dtype=e.dtype)
    for t in reversed(range(T)):
        carry = e[:, t] @ V + carry @ W  # (W^T carry) as rows
        g[:, t] = carry
    return g


def state_gradients(model, x, y) -> torch.Tensor:
    """dL/dh_t (total derivative, through later steps) by autograd on a zero perturbation."""
    zero = torch.zeros(len(x), T, model.rnn.hidden, dtype=x.dtype, requires_grad=True)
    return torch.autograd.grad(loss(model.rollout(x, zero), y), zero)[0]


def test_state_gradients_of_a_linear_rnn_match_the_closed_form():
    model = linear_rnn()
    x, y = sequences(6)
    e = output_error(model(x).detach(), y)
    torch.testing.assert_close(state_gradients(model, x, y), closed_form(model, e))


@pytest.mark.parametrize("arch,kw", [("rnn", {"nonlinearity": "tanh", "alpha": 0.3}), ("gru", {})])
def test_local_update_fed_exact_step_gradients_equals_bptt(arch, kw):
    torch.manual_seed(1)
    model = build_model(arch, inputs=N_IN, hidden=N, num_classes=C, **kw).double()
    x, y = sequences(5, seed=3)
    loss(model(x), y).backward()
    bptt = {n: p.grad.clone() for n, p in model.rnn.named_parameters()}
    g = state_gradients(model, x, y)
    model.zero_grad()
    acts, _ = model.walk(x, detach_inputs=True)  # each step reads h_{t-1} detached
    torch.autograd.backward(acts["rnn"], g)
    for name, p in model.rnn.named_parameters():
        torch.testing.assert_close(p.grad, bptt[name], msg=name)


def test_local_walk_reaches_weights_only_through_each_step():
    model = linear_rnn()
    x, _ = sequences(2)
    acts, _ = model.walk(x, detach_inputs=True)
    W = model.rnn.recurrent.weight
    # d h_t / dW through step t alone: the outer product with h_{t-1}
    states = acts["rnn"]
    v = torch.randn(2, N, dtype=x.dtype)
    (grad,) = torch.autograd.grad(states[:, 3], W, v)
    torch.testing.assert_close(grad, v.T @ states[:, 2].detach())


def draws(model, rule_name: str, M: int, P: int, time: str = "all", **kw):
    """M independent estimates of one example's state gradient (the example copied M times)."""
    x, y = sequences(1, seed=5)
    x, y = x.repeat(M, 1, 1), y.repeat(M, 1)
    with torch.no_grad():
        acts, logits = model.walk(x)
    e = output_error(logits[:1], y[:1]).repeat(M, 1, 1)  # each copy: the error of a batch of 1
    rule = build_rule(rule_name, model, P=P, sigma=0.1, time=time, **kw)
    return rule, acts["rnn"], x, y, e, closed_form(model, e[:1])[0]


def test_vnc_through_time_is_unbiased_with_the_beta_law_of_the_cosine():
    model, M, P = linear_rnn(), 3000, 4
    rule, h, x, y, e, g = draws(model, "vnc", M, P, match_k=0)
    est = rule.estimate({"rnn": h}, e, y, torch.Generator().manual_seed(0), {"input": x})["rnn"]
    dim = T * N  # every step perturbed at once: the cosine lives in T n dimensions
    err = ((est.mean(0) - g).norm() / g.norm()) ** 2
    assert err < 3 * (dim + 1) / (P * M)  # E|mean - g|^2/|g|^2 = (n+1)/(P M)
    cos2 = torch.nn.functional.cosine_similarity(est.flatten(1), g.flatten()[None], dim=1) ** 2
    assert cos2.mean().item() == pytest.approx(P / (P + dim - 1), rel=0.06)
    assert stats.kstest(cos2.numpy(), stats.beta(P / 2, (dim - 1) / 2).cdf).pvalue > 0.01


def test_one_step_at_a_time_has_the_per_step_beta_law():
    model, M, P = linear_rnn(), 2000, 4
    rule, h, x, y, e, g = draws(model, "vnc", M, P, time="step", match_k=0)
    est = rule.estimate({"rnn": h}, e, y, torch.Generator().manual_seed(1), {"input": x})["rnn"]
    for t in (0, 2, T - 1):  # each step's estimate: N dimensions, its own perturbation only
        cos2 = torch.nn.functional.cosine_similarity(est[:, t], g[t][None], dim=1) ** 2
        assert stats.kstest(cos2.numpy(), stats.beta(P / 2, (N - 1) / 2).cdf).pvalue > 0.01
        assert ((est[:, t].mean(0) - g[t]).norm() / g[t].norm()) ** 2 < 3 * (N + 1) / (P * M)


def test_nmnc_through_time_estimates_the_projection_onto_the_manifold():
    model, M, P, k = linear_rnn(), 3000, 4, 3
    rule, h, x, y, e, g = draws(model, "nmnc", M, P, k=k, noise_shape="white")
    xs, _ = sequences(64, seed=9)
    with torch.no_grad():
        states = model.walk(xs)[0]["rnn"]
    rule.observe({"rnn": states})  # states pooled over time and examples
    manifold = rule.manifolds["rnn"]
    assert manifold.k == k
    proj = manifold.project(g.reshape(T, N).float()).reshape(T, N).double()
    est = rule.estimate({"rnn": h}, e, y, torch.Generator().manual_seed(0), {"input": x})["rnn"]
    alpha = (proj.norm() / g.norm()).item() ** 2
    assert 0.05 < alpha < 0.95  # a real projection: neither all nor none of g
    err = ((est.mean(0) - proj).norm() / proj.norm()) ** 2
    assert err < 3 * (T * k + 1) / (P * M)
    cos2 = torch.nn.functional.cosine_similarity(est.flatten(1), g.flatten()[None], dim=1) ** 2
    assert cos2.mean().item() == pytest.approx(alpha * P / (P + T * k - 1), rel=0.06)
    law = stats.beta(P / 2, (T * k - 1) / 2)
    assert stats.kstest((cos2 / alpha).numpy(), law.cdf).pvalue > 0.01


def test_nonlinear_estimates_approach_bptt_as_draws_grow():
    torch.manual_seed(0)
    model = build_model("rnn", inputs=N_IN, hidden=N, num_classes=C, alpha=0.5).double()
    for form in ("jacobian", "loss"):
        rule, h, x, y, e, _ = draws(model, "vnc", 2000, 8, form=form, match_k=0)
        g = state_gradients(model, x[:1], y[:1])[0]
        est = rule.estimate({"rnn": h}, e, y, torch.Generator().manual_seed(3), {"input": x})
        cos = torch.nn.functional.cosine_similarity(est["rnn"].mean(0).flatten(), g.flatten(), 0)
        assert cos > 0.95, form


def test_direct_call_matches_the_rule_and_refuses_unknown_time():
    model = linear_rnn()
    x, y = sequences(3)
    with torch.no_grad():
        acts, logits = model.walk(x)
    e = output_error(logits, y)
    xi = 0.1 * torch.randn(2, *acts["rnn"].shape, dtype=x.dtype)
    a = correlate_through_time(model, x, acts["rnn"], xi, 0.01, e, y, time="all", max_batch=3)
    b = correlate_through_time(model, x, acts["rnn"], xi, 0.01, e, y, time="all")
    torch.testing.assert_close(a, b)  # chunking the rollouts changes nothing
    with pytest.raises(NmncError, match="time"):
        correlate_through_time(model, x, acts["rnn"], xi, 0.01, e, y, time="later")


def test_recurrent_settings_are_checked():
    with pytest.raises(NmncError, match="alpha"):
        build_model("rnn", alpha=1.5)
    with pytest.raises(NmncError, match="nonlinearity"):
        build_model("rnn", nonlinearity="sigmoidd")
    model = build_model("rnn", inputs=2, hidden=4)
    with pytest.raises(NmncError, match="amortised"):
        build_rule("vnc", model, feedback="amortised")
    assert math.prod(model.layer_shapes()["rnn"]) == 4


@pytest.mark.parametrize("time", ["all", "step"])
def test_loss_and_jacobian_forms_agree_in_size_for_both_time_modes(time):
    torch.manual_seed(2)
    model = build_model("rnn", inputs=N_IN, hidden=N, num_classes=C, alpha=0.5).double()
    x, y = sequences(4, seed=7)
    with torch.no_grad():
        acts, logits = model.walk(x)
    e = output_error(logits, y)
    xi = 1e-4 * torch.randn(3, *acts["rnn"].shape, dtype=x.dtype)
    est = {
        form: correlate_through_time(model, x, acts["rnn"], xi, 1e-8, e, y, form=form, time=time)
        for form in ("jacobian", "loss")
    }
    # the same draws: the loss change of the whole batch equals its first-order change
    torch.testing.assert_close(est["loss"], est["jacobian"], rtol=1e-3, atol=1e-9)


def test_step_mode_chunks_and_plain_differences_change_nothing_in_a_linear_rnn():
    model = linear_rnn()
    x, y = sequences(3)
    with torch.no_grad():
        acts, logits = model.walk(x)
    e, h = output_error(logits, y), acts["rnn"]
    xi = 0.1 * torch.randn(2, *h.shape, dtype=x.dtype)
    a = correlate_through_time(model, x, h, xi, 0.01, e, y, time="step")
    b = correlate_through_time(model, x, h, xi, 0.01, e, y, time="step", max_batch=3)
    c = correlate_through_time(model, x, h, xi, 0.01, e, y, time="step", antithetic=False)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)  # linear: one-sided differences are exact too


def test_vnc_noise_energy_is_matched_per_step():
    model = build_model("rnn", inputs=2, hidden=16)
    rule = build_rule("vnc", model, match_k=4, sigma=0.1)
    h = torch.zeros(3, 7, 16)  # (B, T, n): energy per step, not per sequence
    xi, var = rule.noise("rnn", h, torch.Generator().manual_seed(0))
    assert xi.shape == (16, 3, 7, 16) and var == pytest.approx(0.1**2 * 4 / 16)


def test_nmnc_pools_states_of_every_example_when_they_exceed_the_buffer():
    model = build_model("rnn", inputs=2, hidden=6)
    rule = build_rule("nmnc", model, k=2, buffer=40, noise_shape="white")
    states = torch.zeros(8, 10, 6)  # 80 pooled states > buffer 40
    g = torch.Generator().manual_seed(0)
    states[:4, :, 0] = torch.randn(4, 10, generator=g)  # the first examples live on axis 0
    states[4:, :, 1] = torch.randn(4, 10, generator=g)  # the last ones on axis 1
    rule.observe({"rnn": states})
    U = rule.manifolds["rnn"].U
    on = (U[:2] ** 2).sum(1)  # the share of axes 0 and 1 in span(U)
    assert (on > 0.95).all(), on
