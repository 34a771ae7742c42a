"""The defaults table (nmnc.analysis.defaults) at a tiny budget."""

import pandas as pd
import pytest

from nmnc.analysis.defaults import (
    COLUMNS,
    DefaultsConfig,
    choice_of,
    command_line,
    defaults_table,
    nmnc_settings,
    reference_of,
    summarise,
    verdicts,
)
from nmnc.analyze import main as analyze
from nmnc.errors import NmncError, UnknownNameError

TINY = dict(
    width=0.25,
    variants=("defaults", "k=4"),
    references=("readout",),
    seeds=(0, 1),
    steps=2,
    batch_size=16,
    train_examples=64,
    val_examples=32,
    eval_examples=40,
    bp_steps=2,
    grad_images=4,
    manifold_images=32,
    fit_steps=2,
    amortise_batches=1,
    progress=False,
)


def test_variants_are_one_change_from_their_reference():
    assert (choice_of("k=8"), reference_of("k=8")) == ("k", "defaults")
    assert choice_of("space=channel+estimator=ema") == "estimator"
    assert reference_of("space=channel+estimator=ema") == "space=channel"
    assert reference_of("defaults") is None and choice_of("defaults") == "defaults"
    cfg = DefaultsConfig(out="x")
    s = nmnc_settings(cfg, "space=channel+estimator=ema")
    assert (s.P, s.space, s.estimator, s.k) == (4, "channel", "ema", 32)  # base P=4 applied


@pytest.mark.parametrize(
    "bad,err,match",
    [
        ({"variants": ("k=zero",)}, NmncError, "k"),
        ({"variants": ("kk=3",)}, UnknownNameError, "kk"),
        ({"variants": ("space=channel+estimator=ema",)}, NmncError, "not among the variants"),
        ({"references": ("vncc",)}, UnknownNameError, "did you mean 'vnc'"),
        ({"seeds": ()}, NmncError, "seeds must name"),
        ({"steps": 0}, NmncError, "steps must be at least 1"),
    ],
)
def test_bad_config_is_refused_in_one_line(bad, err, match):
    with pytest.raises(err, match=match) as e:
        DefaultsConfig(out="x", **bad)
    assert "\n" not in str(e.value)


def test_tiny_table_writes_csv_and_markdown(tmp_path, data_root):
    cfg = DefaultsConfig(out=str(tmp_path / "d"), data_root=str(data_root), **TINY)
    tables = defaults_table(cfg)
    df, summary = tables["runs"], tables["summary"]
    labels = list(TINY["variants"]) + list(TINY["references"])
    assert list(df.columns) == COLUMNS and len(df) == len(labels) * 2
    assert list(summary.variant) == labels
    saved = pd.read_csv(tmp_path / "d" / "defaults.csv", keep_default_na=False, na_values=[""])
    assert list(saved.columns) == COLUMNS and len(saved) == len(df)
    rows = df.set_index(["variant", "seed"])
    # paired seeds: the read-out's cosine is 0; every variant's gradient cosine is one number
    assert (df[df.variant == "readout"].grad_cos_trained == 0).all()
    assert df.groupby("variant").grad_cos_init.nunique().eq(1).all()
    assert df.grad_cos_trained.between(0, 1).all() and df.val_acc.between(0, 1).all()
    assert rows.loc[("k=4", 0), "reference"] == "defaults"
    d = summary.set_index("variant")
    want = (rows.loc["k=4"].val_acc - rows.loc["defaults"].val_acc).mean()
    assert d.loc["k=4", "d_val"] == pytest.approx(want)
    md = (tmp_path / "d" / "defaults.md").read_text()
    assert command_line(cfg) in md and "| variant | choice |" in md
    assert "**k**: `k=4` vs `defaults`" in md and "reference `readout`" in md


def test_summary_pairs_seeds_and_verdicts_follow_the_numbers():
    def run(variant, choice, reference, rule, accs, cos=0.5):
        return [
            {
                "variant": variant,
                "choice": choice,
                "reference": reference,
                "rule": rule,
                "seed": seed,
                "grad_cos_trained": cos,
                "grad_cos_init": cos,
                "val_acc": acc,
                "test_acc": acc,
                "train_s": 10.0,
                "perturbations": 100,
            }
            for seed, acc in enumerate(accs)
        ]

    df = pd.DataFrame(
        run("defaults", "defaults", "", "nmnc", [0.30, 0.20])
        + run("space=channel", "space", "defaults", "nmnc", [0.35, 0.22], cos=0.6)
        + run("space=channel+estimator=oja", "estimator", "space=channel", "nmnc", [0.30, 0.23])
        + run("vnc", "reference", "defaults", "vnc", [0.25, 0.20])
    )
    s = summarise(df).set_index("variant")
    assert s.loc["space=channel", "d_val"] == pytest.approx(0.035)  # paired: (0.05 + 0.02) / 2
    assert s.loc["space=channel", ["d_val_min", "d_val_max"]].tolist() == pytest.approx(
        [0.02, 0.05]
    )
    assert s.loc["space=channel+estimator=oja", "d_val"] == pytest.approx(-0.02)
    lines = "\n".join(verdicts(summarise(df), min_gain=0.01))
    assert "`space=channel` vs `defaults`" in lines and ": better;" in lines
    assert "space: clearly better in accuracy: space=channel" in lines
    # -0.05 and +0.01: the seeds disagree, so no clear difference
    assert "`space=channel+estimator=oja` vs `space=channel`" in lines
    assert "no clear difference" in lines and "estimator: keep the reference setting" in lines
    assert "reference `vnc`: validation accuracy 0.225 (NMNC defaults 0.250; -0.025)" in lines


def test_cli_prints_the_config_and_requires_out(capsys):
    assert analyze(["defaults", "--set", "steps=3", "--print-config"]) == 0
    assert '"steps": 3' in capsys.readouterr().out
    with pytest.raises(NmncError, match="--out"):
        analyze(["defaults", "--set", "steps=3"])
