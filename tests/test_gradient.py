"""Gradient quality (nmnc.analysis.gradient) on a tiny checkpoint trained in-process."""

import dataclasses
import inspect
import math

import pandas as pd
import pytest
import torch
from torch import nn

import nmnc.analysis.gradient as gradient_module
from nmnc.analysis.gradient import (
    GradientConfig,
    activity,
    gradient_quality,
    gradient_summary,
    nmnc_rule,
)
from nmnc.checkpoint import load_checkpoint
from nmnc.config import TrainConfig, build_config
from nmnc.errors import NmncError
from nmnc.models._base import StagedNet
from nmnc.rules.nmnc import NMNCSettings
from nmnc.rules.vnc import VNCSettings
from nmnc.training import train

COLUMNS = [
    "state",
    "rule",
    "noise_shape",
    "feedback",
    "layer",
    "n",
    "k",
    "P",
    "alpha",
    "chance",
    "cos_activity",
    "rms_cos",
    "rms_cos_theory",
    "cos_weight",
    "vnc_P_equivalent",
]
RULES = {"vnc", "vnc-unmatched", "nmnc", "readout"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("gradient") / "bp"
    cfg = TrainConfig(
        model="cnn", rule="bp", out=str(out), steps=8, batch_size=32, train_examples=256
    )
    train(
        build_config(cfg, {"width": "0.25", "eval_every": "8", "eval_examples": "200"}),
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def cfg(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradient_out")
    return GradientConfig(
        str(checkpoint),
        out=str(out),
        P=(1, 16),
        k=(8,),
        batch_size=8,
        manifold_images=64,
        progress=False,
    )


@pytest.fixture(scope="module")
def table(cfg):
    return gradient_quality(cfg)


def test_table_rows_columns_and_values(cfg, table):
    df = table
    assert list(df.columns) == COLUMNS
    layers = load_checkpoint(cfg.checkpoint).build_model().hidden_layers
    # states x layers x P x (vnc, vnc-unmatched and nmnc at one k with two noise shapes, each
    # with two feedbacks; readout once)
    assert len(df) == 2 * len(layers) * 2 * (4 * 2 + 1)
    assert set(df.state) == {"trained", "init"} and set(df.rule) == RULES
    assert set(df.feedback) == {"example", "amortised", "none"}
    assert set(df.layer) == set(layers) and set(df.P) == {1, 16}
    numeric = df.drop(
        columns=["state", "rule", "noise_shape", "feedback", "layer", "rms_cos_theory"]
    )
    assert numeric.map(math.isfinite).all().all()
    # Beta theory covers per-example estimates with white noise only
    assert set(df[df.rule == "nmnc"].noise_shape) == {"white", "pca"}
    biased = (df.feedback == "amortised") | (df.noise_shape == "pca")
    assert df.rms_cos_theory.isna().eq(biased).all()
    vnc, nm = df[df.rule.str.startswith("vnc")], df[df.rule == "nmnc"]
    assert (vnc.k == vnc.n).all() and (vnc.alpha == 1).all() and (vnc.chance == 1).all()
    assert (nm.k == 8).all() and (nm.chance == 8 / nm.n).all()
    assert ((nm.alpha > 0) & (nm.alpha <= 1 + 1e-6)).all()
    for col in ("cos_activity", "rms_cos", "cos_weight"):
        assert df[col].between(-1, 1).all()
    assert (df.rms_cos >= df.cos_activity.abs() - 1e-6).all()  # RMS >= |mean|
    readout = df[df.rule == "readout"]  # no hidden-layer estimate: every cosine is 0
    assert (readout[["cos_activity", "rms_cos", "rms_cos_theory", "cos_weight"]] == 0).all().all()
    saved = pd.read_csv(f"{cfg.out}/gradient.csv", keep_default_na=False, na_values=[""])
    assert list(saved.columns) == COLUMNS and len(saved) == len(df)
    pd.testing.assert_frame_equal(saved, df, check_dtype=False)


def test_vnc_cosine_grows_with_P(table):
    vnc = table[(table.rule == "vnc") & (table.feedback == "example")]
    # E cos^2 = P/(P+n-1): at P=16 about 16 times P=1's, on average over layers and states
    assert vnc[vnc.P == 16].rms_cos.mean() > vnc[vnc.P == 1].rms_cos.mean()


def test_vnc_is_energy_matched_and_unmatched_is_not(cfg):
    model = load_checkpoint(cfg.checkpoint).build_model()
    h = torch.zeros(2, 16, 8, 8)
    n, sigma = h[0].numel(), VNCSettings().sigma
    for name, var in (("vnc", sigma**2 * 32 / n), ("vnc-unmatched", sigma**2)):
        rule = gradient_module._rule(model, name, 4, "example", cfg)
        assert rule.noise("conv2", h, torch.Generator())[1] == pytest.approx(var)


def test_summary_is_the_median_over_layers(table):
    s = gradient_summary(table)
    names = ["state", "rule", "noise_shape", "feedback", "k"]
    assert list(s.columns) == [1, 16] and s.index.names == names
    assert set(s.index) == {
        (st, rule, shape, fb, k)
        for st in ("trained", "init")
        for rule, shape, k in (
            ("vnc", "white", -1),
            ("vnc-unmatched", "white", -1),
            ("nmnc", "white", 8),
            ("nmnc", "pca", 8),
        )
        for fb in ("example", "amortised")
    } | {(st, "readout", "none", "none", -1) for st in ("trained", "init")}
    rows = table[
        (table.state == "init")
        & (table.rule == "nmnc")
        & (table.noise_shape == "white")
        & (table.feedback == "example")
        & (table.P == 16)
    ]
    key = ("init", "nmnc", "white", "example", 8)
    assert s.loc[key, 16] == pytest.approx(rows.rms_cos.median())
    means = gradient_summary(table, "cos_activity")
    assert means.loc[key, 16] == pytest.approx(rows.cos_activity.median())


def test_rms_cosine_matches_theory_in_a_linear_network():
    """A linear network: antithetic estimates are exact directional derivatives, so the mean of
    cos^2 over examples is alpha P/(P+k-1) (NMNC) and P/(P+n-1) (VNC); and amortised feedback,
    whose Jacobian is the same for every example here, beats per-example estimates at P=1."""
    torch.manual_seed(0)
    stages = [
        ("l1", nn.Sequential(nn.Flatten(), nn.Linear(48, 24))),
        ("l2", nn.Linear(24, 20)),
        ("out", nn.Linear(20, 10)),
    ]
    model = StagedNet(stages, input_size=4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(1024, 3, 4, 4, generator=g), torch.randint(0, 10, (1024,), generator=g)
    xm, ym = torch.randn(256, 3, 4, 4, generator=g), torch.randint(0, 10, (256,), generator=g)
    cfg = GradientConfig(
        "unused",
        P=(1, 4, 16),
        k=(4,),
        batch_size=1024,
        manifold_images=256,
        amortise_batches=1,
        noise_shapes=("white",),
        sigma=1e-3,
        progress=False,
    )
    df = pd.DataFrame(gradient_module.quality_rows(model, x, y, xm, ym, cfg, "init"))
    ex = df[df.feedback == "example"]
    assert len(ex) == 3 * 2 * 3  # rules x layers x P
    # cos^2 ~ alpha Beta(P/2, (k-1)/2): the mean of 1024 draws is within 10% of its expectation
    ratio = ex.rms_cos**2 / ex.rms_cos_theory**2
    assert ratio.between(0.9, 1.1).all(), ex[["rule", "layer", "P", "rms_cos", "rms_cos_theory"]]
    vnc = df[(df.rule == "vnc") & (df.P == 1)].set_index(["feedback", "layer"]).rms_cos
    assert (vnc["amortised"] > 2 * vnc["example"]).all(), vnc


def test_nmnc_noise_comes_from_the_rule_and_lies_on_its_manifold(cfg):
    model = load_checkpoint(cfg.checkpoint).build_model()
    xm = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    acts = activity(model, xm)[1]
    rule = nmnc_rule(model, acts, 8, cfg)
    for name, m in rule.manifolds.items():
        assert m.k == 8 and m.count == 64  # fitted once, on every manifold image
        h = acts[name][:4]
        xi, var = rule.noise(name, h, torch.Generator().manual_seed(1))
        assert xi.shape == (cfg.P[0], 4, *h.shape[1:])
        assert var == pytest.approx(NMNCSettings().sigma ** 2)  # the rule's own default sigma
        flat = xi.flatten(0, 1)
        assert torch.allclose(m.project(flat), flat, atol=1e-6)  # xi in span(U)
    smaller = nmnc_rule(model, acts, 8, dataclasses.replace(cfg, sigma=0.01))
    assert smaller.noise(name, h, torch.Generator())[1] == pytest.approx(1e-4)


def test_the_module_draws_no_noise_and_parses_no_arguments():
    source = inspect.getsource(gradient_module)
    assert "randn" not in source and "argparse" not in source


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"P": (0, 4)}, "P must be"),
        ({"k": ()}, "k must be"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"manifold_images": 0}, "manifold_images must be at least 1"),
        ({"sigma": 0.0}, "sigma must be positive"),
        ({"rules": ("vnc", "bp")}, "unknown rule 'bp'"),
        ({"feedback": ("exampel",)}, "unknown feedback 'exampel'"),
        ({"amortise_batches": 0}, "amortise_batches must be at least 1"),
    ],
)
def test_bad_config_is_refused_in_one_line(bad, match):
    with pytest.raises(NmncError, match=match) as err:
        GradientConfig("run", **bad)
    assert "\n" not in str(err.value)


def test_bf16_clean_pass_keeps_fp32_estimates(cfg):
    """autocast=bf16 adds cos_fp32: the rules' estimate with a bf16 clean pass (perturbed passes in
    fp32) against the fp32 estimate from the same noise; at least 0.99 in every layer here."""
    low = gradient_quality(
        dataclasses.replace(cfg, autocast="bf16", P=(4,), k=(8,), amortise_batches=1, out=None)
    )
    assert list(low.columns) == COLUMNS + ["cos_fp32"]
    noisy = low[low.rule != "readout"]
    assert noisy.cos_fp32.min() >= 0.99, noisy[["state", "rule", "feedback", "layer", "cos_fp32"]]
    with pytest.raises(NmncError, match="unknown autocast 'fp8'"):
        dataclasses.replace(cfg, autocast="fp8")
