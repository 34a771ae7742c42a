"""Statistical facts from algorithm.md, on small networks with known gradients.

Tolerances come from the theory: cos^2 ~ Beta(P/2, (n-1)/2) (VNC) and
cos^2/alpha ~ Beta(P/2, (k-1)/2) (NMNC), so a mean over N independent draws has standard error
sqrt(Var/N); we allow 4 standard errors.
"""

import math

import pytest
import torch

from nmnc.engine.manifold import (
    ESTIMATORS,
    BufferPCA,
    EMACovariance,
    FrequentDirections,
    Manifold,
    Sanger,
    make_manifold,
)
from nmnc.engine.perturb import correlate
from nmnc.errors import NmncError, UnknownNameError

N, n, n_o = 4000, 64, 10


def beta_mean_sd(a, b):
    return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


@pytest.fixture()
def linear():
    g = torch.Generator().manual_seed(0)
    J = torch.randn(n_o, n, generator=g, dtype=torch.float64)
    e = torch.randn(N, n_o, generator=g, dtype=torch.float64)
    h = torch.randn(N, n, generator=g, dtype=torch.float64)
    return J, h, e, e @ J  # true gradients g = J^T e, one per draw


def cos(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@pytest.mark.parametrize("P", [1, 4, 16])
def test_vnc_cos2_matches_beta(linear, P):
    J, h, e, g = linear
    gen = torch.Generator().manual_seed(P)
    sigma = 0.1
    xi = sigma * torch.randn(P, N, n, generator=gen, dtype=torch.float64)
    g_hat = correlate(lambda z: z @ J.T, h, xi, sigma**2, e)
    c = cos(g_hat, g)
    mean, sd = beta_mean_sd(P / 2, (n - 1) / 2)
    assert mean == pytest.approx(P / (P + n - 1))
    assert abs((c**2).mean().item() - mean) < 4 * sd / math.sqrt(N)
    assert (c >= 0).all()  # the cosine is never negative


@pytest.mark.parametrize("P,k", [(1, 8), (4, 8), (16, 16)])
def test_nmnc_cos2_over_alpha_matches_beta(linear, P, k):
    J, h, e, g = linear
    m = Manifold((n,), k=k, centered=True, buffer=512, refresh=1)
    gen = torch.Generator().manual_seed(1)
    m.observe(
        torch.randn(512, n, generator=gen) @ torch.randn(n, n, generator=gen), 0
    )  # anisotropic activity
    U = m.U.double()
    xi = m.sample(P, N, 0.1, torch.Generator().manual_seed(2)).double()
    g_hat = correlate(lambda z: z @ J.T, h, xi, 0.01, e)
    alpha = ((g @ U) ** 2).sum(1) / (g**2).sum(1)
    ratio = cos(g_hat, g) ** 2 / alpha
    mean, sd = beta_mean_sd(P / 2, (k - 1) / 2)
    assert mean == pytest.approx(P / (P + k - 1))
    assert abs(ratio.mean().item() - mean) < 4 * sd / math.sqrt(N)


def test_vnc_unbiased_and_error_scale(linear):
    J, h, e, g = linear
    P = 4
    one_h, one_e = h[:1].expand(N, n), e[:1].expand(N, n_o)  # one example, N independent estimates
    g0 = g[0]
    xi = 0.1 * torch.randn(P, N, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g_hat = correlate(lambda z: z @ J.T, one_h, xi, 0.01, one_e)
    err = ((g_hat - g0) ** 2).sum(1) / (g0**2).sum()
    # E|g_hat - g|^2 / |g|^2 = (n+1)/P, and the mean of N draws is within its own sampling error
    assert err.mean().item() == pytest.approx((n + 1) / P, rel=0.1)
    bias = ((g_hat.mean(0) - g0) ** 2).sum() / (g0**2).sum()
    assert bias.item() < 4 * (n + 1) / (P * N)


def test_nmnc_estimates_the_projection(linear):
    J, h, e, g = linear
    P, k = 4, 8
    m = Manifold((n,), k=k, buffer=256)
    m.observe(torch.randn(256, n, generator=torch.Generator().manual_seed(4)), 0)
    U = m.U.double()
    one_h, one_e, g0 = h[:1].expand(N, n), e[:1].expand(N, n_o), g[0]
    xi = m.sample(P, N, 0.1, torch.Generator().manual_seed(5)).double()
    g_hat = correlate(lambda z: z @ J.T, one_h, xi, 0.01, one_e)
    proj = U @ (U.T @ g0)
    alpha = (proj**2).sum() / (g0**2).sum()
    mean = g_hat.mean(0)
    # unbiased for Pi g; biased for g by exactly the off-manifold part (1 - alpha)|g|^2
    assert (((mean - proj) ** 2).sum() / (g0**2).sum()).item() < 4 * (k + 1) / (P * N)
    assert (((mean - g0) ** 2).sum() / (g0**2).sum()).item() == pytest.approx(
        1 - alpha.item(), abs=4 * (k + 1) / (P * N) + 0.01
    )
    # every perturbation lies in the span of U
    flat = xi.reshape(-1, n)
    assert torch.allclose(flat @ U @ U.T, flat, atol=1e-6)


def test_nmnc_with_k_equal_n_matches_vnc(linear):
    J, h, e, g = linear
    P = 4
    m = Manifold((n,), k=n, buffer=256)
    m.observe(torch.randn(256, n, generator=torch.Generator().manual_seed(6)), 0)
    assert m.k == n
    xi = m.sample(P, N, 0.1, torch.Generator().manual_seed(7)).double()
    c2 = cos(correlate(lambda z: z @ J.T, h, xi, 0.01, e), g) ** 2
    mean, sd = beta_mean_sd(P / 2, (n - 1) / 2)
    assert abs(c2.mean().item() - mean) < 4 * sd / math.sqrt(N)


@pytest.mark.parametrize("antithetic,expected", [(True, 4.0), (False, 2.0)])
def test_bias_shrinks_with_sigma(antithetic, expected):
    """Finite-difference bias: O(sigma^2) with antithetic pairs (halving sigma: /4), O(sigma)
    without (/2)."""
    torch.manual_seed(0)
    d, B, P = 16, 2000, 2
    W1, W2 = (
        torch.randn(32, d, dtype=torch.float64) / 4,
        torch.randn(n_o, 32, dtype=torch.float64) / 6,
    )
    f = lambda z: torch.tanh(z @ W1.T) @ W2.T  # noqa: E731
    h = torch.randn(B, d, dtype=torch.float64)
    e = torch.randn(B, n_o, dtype=torch.float64)
    hh = h.clone().requires_grad_()
    (f(hh) * e).sum().backward()
    g = hh.grad
    z = torch.randn(P, B, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    linear_part = (
        torch.einsum("pb,pbd->bd", (z * g).sum(-1), z) / P
    )  # the sigma -> 0 limit, same draws

    def bias(sigma):
        g_hat = correlate(f, h, sigma * z, sigma**2, e, antithetic=antithetic)
        return (g_hat - linear_part).norm()

    ratio = (bias(0.2) / bias(0.1)).item()
    assert ratio == pytest.approx(expected, rel=0.12)


def test_loss_form_agrees_with_jacobian_form_for_small_sigma():
    torch.manual_seed(0)
    W = torch.randn(n_o, n, dtype=torch.float64) / 8
    h = torch.randn(256, n, dtype=torch.float64)
    y = torch.randint(0, n_o, (256,))
    from nmnc.engine.perturb import output_error

    e = output_error(h @ W.T, y).double()
    xi = 1e-3 * torch.randn(
        8, 256, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    a = correlate(lambda z: z @ W.T, h, xi, 1e-6, e, y, form="jacobian")
    b = correlate(lambda z: z @ W.T, h, xi, 1e-6, e, y, form="loss")
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-9)


def test_manifold_estimators_find_a_planted_subspace():
    """PCA, EMA covariance, Sanger's rule and the frequent-directions sketch all recover a planted
    4-d subspace of 40-d activity."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(40, 4, generator=gen))[0]
    scales = torch.tensor([5.0, 4.0, 3.0, 2.0])
    for est in ("pca", "ema", "oja", "fd"):
        m = Manifold((40,), k=4, estimator=est, refresh=50, buffer=1024, ema_decay=0.9, seed=1)
        for t in range(400):
            z = torch.randn(64, 4, generator=gen) * scales
            m.observe(z @ basis.T + 0.1 * torch.randn(64, 40, generator=gen), t)
        m.refresh_now()
        overlap = (torch.linalg.svdvals(basis.T @ m.U) ** 2).mean().item()
        assert overlap > 0.95, (est, overlap)


def test_adaptive_k_rules():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(2000, 30, generator=gen) * torch.tensor([10.0] * 3 + [0.1] * 27)
    m = Manifold((30,), k_rule="variance", var_threshold=0.9, k_max=30, buffer=2000)
    m.observe(X, 0)
    assert m.k == 3
    m = Manifold((30,), k_rule="pr", k_max=30, buffer=2000)
    m.observe(X, 0)
    assert m.k == 3 and m.pr == pytest.approx(3, rel=0.1)


def test_channel_space_perturbations():
    m = Manifold((6, 4, 4), k=2, space="channel", buffer=4096)
    h = torch.randn(16, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    m.observe(h, 0)
    xi = m.sample(3, 5, 0.1, torch.Generator().manual_seed(1))
    assert xi.shape == (3, 5, 6, 4, 4)
    rows = xi.permute(0, 1, 3, 4, 2).reshape(-1, 6)
    assert torch.allclose(rows @ m.U @ m.U.T, rows, atol=1e-6)


def test_factory_builds_one_class_per_estimator():
    assert ESTIMATORS == {
        "pca": BufferPCA,
        "ema": EMACovariance,
        "oja": Sanger,
        "fd": FrequentDirections,
    }
    for name, cls in ESTIMATORS.items():
        # every estimator takes the whole rule configuration; another estimator's own settings are
        # ignored
        m = make_manifold((12,), estimator=name, k=3, buffer=64, oja_lr=0.1)
        assert type(m) is cls and m.dim == 12 and m.k_cap == 3
        assert (
            type(Manifold((12,), k=3, estimator=name)) is cls
        )  # the old name still builds estimators
    with pytest.raises(
        UnknownNameError, match="unknown manifold estimator 'pcaa' .*did you mean 'pca'"
    ):
        make_manifold((12,), estimator="pcaa")
    with pytest.raises(UnknownNameError, match="manifold space"):
        make_manifold((12,), space="pixels")
    with pytest.raises(NmncError, match="space=channel needs a conv layer"):
        make_manifold((12,), space="channel")
    with pytest.raises(NmncError, match="estimator=ema keeps a 8196x8196 covariance"):
        make_manifold((4, 1, 2049), estimator="ema")
    with pytest.raises(TypeError):  # a setting no estimator knows is a mistake, not ignored
        make_manifold((12,), buffr=64)


def test_auto_picks_the_sketch_where_the_buffer_exceeds_its_memory_budget():
    """auto: batch PCA while buffer x n float32 fits in manifold_mb, the O(n k) sketch beyond; the
    small CIFAR CNN's largest layer (16x32x32) stays on PCA at the default 96 MB, an ImageNet
    ResNet-18's smallest map (512x7x7) does not."""
    assert type(make_manifold((16, 32, 32), "auto", k=8)) is BufferPCA
    assert type(make_manifold((512, 7, 7), "auto", k=8)) is FrequentDirections
    assert type(make_manifold((512, 7, 7), "auto", k=8, manifold_mb=128)) is BufferPCA
    assert type(make_manifold((512, 7, 7), "auto", k=8, buffer=64)) is BufferPCA
    # channel space estimates a C-dimensional manifold: its buffer is small
    assert type(make_manifold((64, 112, 112), "auto", k=8, space="channel")) is BufferPCA


def test_sketch_memory_grows_with_k_not_with_the_buffer():
    """The sketch holds 2k x n (plus U and the mean); batch PCA holds buffer x n."""
    X = torch.randn(64, 3000, generator=torch.Generator().manual_seed(0))
    held = {}
    for k in (4, 8, 16):
        m = make_manifold((3000,), "fd", k=k, buffer=4096)
        m.observe(X, 0)
        held[k] = m.state_bytes()
        assert held[k] == 4 * 3000 * (2 * k + k + 1) + 4 * k  # B, U, mean; spectrum
    assert held[16] - held[8] == 2 * (held[8] - held[4])  # linear in k
    pca = make_manifold((3000,), "pca", k=4, buffer=4096)
    pca.observe(X, 0)  # a buffer not yet full is saved short: only the 64 rows written
    assert pca.state_dict()["buf"].shape == (64, 3000)


def test_sketch_matches_batch_pca_on_one_batch():
    """Fed one batch, the sketch is exact: its top-k subspace and variances are batch PCA's."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 30, generator=gen) @ torch.randn(30, 60, generator=gen)
    pca = make_manifold((60,), "pca", k=5, buffer=200)
    fd = make_manifold((60,), "fd", k=5)
    pca.observe(X, 0)
    fd.observe(X, 0)
    overlap = (torch.linalg.svdvals(pca.U.T @ fd.U) ** 2).mean().item()
    assert overlap > 1 - 1e-5
    # PCA's variances divide by M - 1, the sketch's moving average by M
    assert torch.allclose(fd.spectrum, pca.spectrum * 199 / 200, rtol=1e-4)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_manifold_state_resumes_exactly_from_a_weights_only_checkpoint(tmp_path, estimator):
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(32, 2, 4, 4, generator=gen) for _ in range(6)]
    settings = {"estimator": estimator, "k": 3, "refresh": 2, "buffer": 48, "seed": 1}
    a = make_manifold((2, 4, 4), **settings)
    for t, h in enumerate(batches[:3]):
        a.observe(h, t)
    torch.save(a.state_dict(), tmp_path / "m.pt")
    b = make_manifold((2, 4, 4), **settings)
    b.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    for t, h in enumerate(batches[3:], start=3):
        a.observe(h, t)
        b.observe(h, t)
    assert torch.equal(a.U, b.U) and torch.equal(a.spectrum, b.spectrum)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@pytest.mark.parametrize("space", ["map", "channel"])
def test_pca_shaped_noise_has_the_manifold_variances(estimator, space):
    """noise_shape=pca: covariance sigma^2 U diag(s^2) U^T with s^2 ~ the variances along U and
    mean(s^2) = 1 (the total energy of white noise); white noise is sigma U z, as before."""
    gen = torch.Generator().manual_seed(0)
    C, k, sigma = 6, 3, 0.1
    basis = torch.linalg.qr(torch.randn(C, k, generator=gen))[0]
    scales = torch.tensor([4.0, 2.0, 1.0])

    def batch():  # (32, C, 2, 2): one channel vector near a planted 3-d subspace per example,
        # the same at every position, so the map and channel spectra are both ~ scales^2
        z = (torch.randn(32, k, generator=gen) * scales) @ basis.T  # (32, C)
        h = z[:, :, None, None].expand(32, C, 2, 2)
        return h + 0.05 * torch.randn(32, C, 2, 2, generator=gen)

    settings = {"estimator": estimator, "k": k, "space": space, "buffer": 4096, "refresh": 1000}
    shaped = make_manifold((C, 2, 2), noise_shape="pca", ema_decay=0.9, seed=1, **settings)
    white = make_manifold((C, 2, 2), ema_decay=0.9, seed=1, **settings)
    for t in range(200 if estimator == "oja" else 5):
        h = batch()
        shaped.observe(h, t)
        white.observe(h, t)
    shaped.refresh_now()
    white.refresh_now()
    s = shaped.noise_scale()
    assert white.noise_scale() is None and s.shape == (k,)
    assert (s**2).mean().item() == pytest.approx(1, rel=1e-5)
    lam = shaped.spectrum
    assert torch.allclose(s**2, lam / lam.mean(), rtol=1e-5)
    # the variances along U follow the planted ones (16 : 4 : 1), whatever the estimator
    assert torch.allclose((s**2).sort(descending=True).values, 3 * scales**2 / 21, rtol=0.25)

    U = shaped.U
    xi = shaped.sample(2000, 8, sigma, torch.Generator().manual_seed(2))  # (P, B, C, 2, 2)
    rows = (xi.permute(0, 1, 3, 4, 2) if space == "channel" else xi).reshape(-1, U.shape[0])
    cov = rows.T @ rows / len(rows)
    want = sigma**2 * U @ torch.diag(s**2) @ U.T
    assert torch.allclose(cov, want, atol=0.05 * want.abs().max()), (cov, want)
    # white noise: the same draws as sigma U z, covariance sigma^2 U U^T
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    xi_w = white.sample(4, 5, sigma, g1)
    Uw = white.U
    if space == "map":
        z = torch.randn(4, 5, k, generator=g2)
        assert torch.equal(xi_w, (sigma * z @ Uw.T).view(4, 5, C, 2, 2))
    else:
        z = torch.randn(4, 5, 4, k, generator=g2)
        assert torch.equal(xi_w, (sigma * z @ Uw.T).view(4, 5, 2, 2, C).permute(0, 1, 4, 2, 3))


def test_noise_shape_is_validated():
    with pytest.raises(UnknownNameError, match="unknown manifold noise_shape 'pcaa'"):
        make_manifold((12,), noise_shape="pcaa")
    from nmnc.rules.nmnc import NMNCSettings

    with pytest.raises(UnknownNameError, match="noise_shape 'shaped'.*choose from: pca, white"):
        NMNCSettings(noise_shape="shaped")
    assert NMNCSettings(noise_shape="pca").noise_shape == "pca"


def test_sketch_agrees_with_batch_pca_on_a_trained_cnn(tmp_path, data_root):
    """The benchmark's comparison on a briefly trained CNN: the reference agrees with itself, the
    sketch's subspace is far closer to batch PCA's than chance, holds less memory, and its
    estimate points along the true gradient about as well."""
    from nmnc.analysis.estimators import EstimatorConfig, estimator_agreement
    from nmnc.errors import run_cli
    from nmnc.train import main as train_main

    run = tmp_path / "bp"
    flags = ["--train-examples", "256", "--batch-size", "32", "--steps", "8", "--quiet"]
    flags += ["--set", "width=0.5", "--set", "eval_examples=100", "--out", str(run)]
    assert run_cli(train_main, flags) == 0
    cfg = EstimatorConfig(str(run), k=8, stream_batches=8, batch_size=32, buffer=256, P=8)
    rows = {(r["estimator"], r["layer"]): r for r in estimator_agreement(cfg)}
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        pca, fd = rows[("pca", layer)], rows[("fd", layer)]
        assert pca["overlap"] == pytest.approx(1.0, abs=1e-5)
        assert fd["overlap"] > 0.5 > 20 * fd["chance"]
        assert fd["state_mb"] < pca["state_mb"]
        assert fd["rms_cos"] > 0.5 * pca["rms_cos"] > 0


def test_sketch_basis_is_orthonormal_when_a_batch_has_fewer_rows_than_k():
    """Centred, 4 rows span 3 directions: the sketch keeps those 3, not noise directions (resnet18
    at batch 8 with k = 32 meets this at its first refresh)."""
    m = make_manifold((100,), "fd", k=8)
    m.observe(torch.randn(4, 100, generator=torch.Generator().manual_seed(0)), 0)
    assert m.k == 3
    assert torch.allclose(m.U.T @ m.U, torch.eye(3), atol=1e-5)
