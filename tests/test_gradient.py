"""Gradient quality (nmnc.analysis.gradient) on a tiny checkpoint trained in-process."""

import dataclasses
import inspect
import math

import pandas as pd
import pytest
import torch

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
from nmnc.rules.nmnc import NMNCSettings
from nmnc.training import train

COLUMNS = [
    "state",
    "rule",
    "layer",
    "n",
    "k",
    "P",
    "alpha",
    "chance",
    "cos_activity",
    "cos_weight",
    "rms_cos_theory",
    "vnc_P_equivalent",
]


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
    assert len(df) == 2 * len(layers) * 2 * 2  # states x layers x P x (vnc + one k)
    assert set(df.state) == {"trained", "init"} and set(df.rule) == {"vnc", "nmnc"}
    assert set(df.layer) == set(layers) and set(df.P) == {1, 16}
    numeric = df.drop(columns=["state", "rule", "layer"])
    assert numeric.map(math.isfinite).all().all()
    vnc, nm = df[df.rule == "vnc"], df[df.rule == "nmnc"]
    assert (vnc.k == vnc.n).all() and (vnc.alpha == 1).all() and (vnc.chance == 1).all()
    assert (nm.k == 8).all() and (nm.chance == 8 / nm.n).all()
    assert ((nm.alpha > 0) & (nm.alpha <= 1 + 1e-6)).all()
    assert df.cos_activity.between(-1, 1).all() and df.cos_weight.between(-1, 1).all()
    saved = pd.read_csv(f"{cfg.out}/gradient.csv")
    assert list(saved.columns) == COLUMNS and len(saved) == len(df)
    pd.testing.assert_frame_equal(saved, df, check_dtype=False)


def test_vnc_cosine_grows_with_P(table):
    vnc = table[table.rule == "vnc"]
    # E cos ~ sqrt(P/(P+n)): at P=16 about four times P=1's, on average over layers and states
    assert vnc[vnc.P == 16].cos_activity.mean() > vnc[vnc.P == 1].cos_activity.mean()


def test_summary_is_the_median_over_layers(table):
    s = gradient_summary(table)
    assert list(s.columns) == [1, 16] and s.index.names == ["state", "rule", "k"]
    assert set(s.index) == {(st, "vnc", -1) for st in ("trained", "init")} | {
        (st, "nmnc", 8) for st in ("trained", "init")
    }
    rows = table[(table.state == "init") & (table.rule == "nmnc") & (table.P == 16)]
    assert s.loc[("init", "nmnc", 8), 16] == pytest.approx(rows.cos_activity.median())


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
    ],
)
def test_bad_config_is_refused_in_one_line(bad, match):
    with pytest.raises(NmncError, match=match) as err:
        GradientConfig("run", **bad)
    assert "\n" not in str(err.value)


def test_bf16_clean_pass_keeps_fp32_estimates(cfg):
    """autocast=bf16 adds cos_fp32: the rules' estimate with a bf16 clean pass (perturbed passes in
    fp32) against the fp32 estimate from the same noise; at least 0.99 in every layer here."""
    low = gradient_quality(dataclasses.replace(cfg, autocast="bf16", P=(4,), k=(8,), out=None))
    assert list(low.columns) == COLUMNS + ["cos_fp32"]
    assert low.cos_fp32.min() >= 0.99, low[["state", "rule", "layer", "cos_fp32"]]
    with pytest.raises(NmncError, match="unknown autocast 'fp8'"):
        dataclasses.replace(cfg, autocast="fp8")
