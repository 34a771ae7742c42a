import json

import pandas as pd
import pytest
import torch

from nmnc.analysis.alignment import layer_alignment
from nmnc.analysis.dimension import participation_ratio, power_law, spectrum_pr, twonn
from nmnc.analyze import main as analyze_main
from nmnc.errors import run_cli
from nmnc.models import build_model
from nmnc.train import main as train_main


def test_participation_ratio_of_known_spectra():
    assert spectrum_pr([1, 1, 1, 1]) == pytest.approx(4)
    assert spectrum_pr([1, 0, 0]) == pytest.approx(1)
    assert spectrum_pr([3, 1]) == pytest.approx(16 / 10)
    g = torch.Generator().manual_seed(0)
    # data with covariance eigenvalues (4, 1, 1, 0...): PR = 36/18 = 2
    X = torch.randn(20000, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 1.0])
    Q = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))[0]
    assert participation_ratio(
        torch.cat([X, torch.zeros(20000, 7, dtype=torch.float64)], 1) @ Q
    ) == pytest.approx(2, rel=0.05)


@pytest.mark.parametrize("d", [2, 5, 10])
def test_twonn_recovers_known_dimension(d):
    g = torch.Generator().manual_seed(d)
    Z = torch.randn(2500, d, generator=g)
    embed = torch.linalg.qr(torch.randn(50, d, generator=g))[0]  # a d-dim subspace of R^50
    assert twonn(Z @ embed.T) == pytest.approx(d, rel=0.10)


def test_power_law_fit():
    x = [0.25, 0.5, 1, 2]
    beta, c = power_law(x, [3 * v**0.4 for v in x])
    assert beta == pytest.approx(0.4) and c == pytest.approx(3)


def test_alignment_curve_ends_at_one_and_random_net_is_at_chance():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25).eval()
    x = torch.randn(300, 3, 32, 32)
    with torch.no_grad():
        h = model.conv1(x)
        h = model.conv2(h)
        h = model.conv3(h)  # n = 16 * 8 * 8 = 1024
    r = layer_alignment(model, "conv3", h, ks=[8, 64, 256, 1024])
    curve = {row["k"]: row for row in r["curve"]}
    assert curve[1024]["alpha"] == pytest.approx(1.0, abs=1e-9)
    assert all(0 <= row["alpha"] <= 1 + 1e-9 for row in r["curve"])
    assert r["dimension"]["rank"] <= 299


def test_random_subspace_gives_k_over_n():
    """A Jacobian unrelated to the activity: alpha_k is about k/n."""
    from torch import nn

    from nmnc.models import StagedNet

    g = torch.Generator().manual_seed(0)
    n, N = 200, 400
    net = StagedNet([("hidden", nn.Identity()), ("out", nn.Linear(n, 10))], 32)
    with torch.no_grad():
        net.out.weight.copy_(torch.randn(10, n, generator=g))
    h = torch.randn(N, n, generator=g) @ torch.randn(
        n, n, generator=g
    )  # anisotropic, independent of J
    r = layer_alignment(net, "hidden", h, ks=[10, 50, 100])
    for row in r["curve"]:
        # alpha_k of a fixed 10-row J on a random k-subspace: mean k/n,
        # sd about sqrt(2 k/n (1-k/n) / 10 / (n/2))
        assert row["alpha"] == pytest.approx(row["chance"], abs=0.08)


def test_analysis_end_to_end_on_tiny_checkpoint(tmp_path, data_root, capsys):
    ck = tmp_path / "run"
    assert (
        run_cli(
            train_main,
            [
                "--out",
                str(ck),
                "--train-examples",
                "320",
                "--batch-size",
                "32",
                "--steps",
                "5",
                "--quiet",
                "--set",
                "width=0.25",
                "eval_every=5",
                "eval_examples=100",
            ],
        )
        == 0
    )
    out = tmp_path / "an"
    assert (
        run_cli(
            analyze_main,
            [
                "alignment",
                "--checkpoint",
                str(ck),
                "--set",
                "images=100",
                "--out",
                str(out),
                "--quiet",
            ],
        )
        == 0
    )
    a = pd.read_csv(out / "alignment.csv")
    assert set(a.state) == {"trained", "untrained"} and set(a.layer) == {
        "conv1",
        "conv2",
        "conv3",
        "conv4",
    }
    last = a.sort_values("k").groupby(["state", "layer"]).tail(1)
    assert (last.alpha.round(9) == 1).all() and (last.k == last.n).all()
    d = pd.read_csv(out / "dimension.csv")
    assert (d.pr >= 1).all() and (d.twonn > 0).all()
    for f in ("alignment.png", "alignment.svg", "dimension.png", "angles.csv"):
        assert (out / f).stat().st_size > 0
    assert "alpha@8" in capsys.readouterr().out


def test_width_sweep_and_efficiency(tmp_path, data_root, capsys):
    runs = []
    for w in (0.25, 0.5):
        d = tmp_path / f"w{w}"
        assert (
            run_cli(
                train_main,
                [
                    "--out",
                    str(d),
                    "--train-examples",
                    "320",
                    "--batch-size",
                    "32",
                    "--steps",
                    "4",
                    "--quiet",
                    "--set",
                    f"width={w}",
                    "eval_every=2",
                    "eval_examples=100",
                ],
            )
            == 0
        )
        runs.append(str(d))
    out = tmp_path / "sweep"
    assert (
        run_cli(
            analyze_main,
            [
                "width-sweep",
                "--set",
                "widths=0.25,0.5",
                "--set",
                f"checkpoints={','.join(runs)}",
                "--set",
                "images=80",
                "--out",
                str(out),
            ],
        )
        == 0
    )
    df = pd.read_csv(out / "width.csv")
    assert len(df) == 8 and set(df.width) == {0.25, 0.5}
    fit = pd.read_csv(out / "width_fit.csv")
    assert {"pr", "twonn"} == set(fit.measure) and fit.beta_width.notna().all()
    assert (
        run_cli(
            analyze_main,
            [
                "width-sweep",
                "--set",
                "widths=0.25,0.5",
                "--set",
                f"checkpoints={runs[0]}",
                "--out",
                str(out),
            ],
        )
        == 2
    )
    assert (
        run_cli(analyze_main, ["width-sweep", "--set", "widths=0.25,abc", "--out", str(out)]) == 2
    )
    assert "widths='0.25,abc' is not a comma-separated list of float" in capsys.readouterr().err
    eff = tmp_path / "eff"
    assert (
        run_cli(
            analyze_main,
            [
                "efficiency",
                "--runs",
                runs[0],
                "--runs",
                runs[1],
                "--set",
                "target_acc=0.0",
                "--out",
                str(eff),
            ],
        )
        == 0
    )
    t = pd.read_csv(eff / "to_target.csv")
    assert (
        t.examples_to_target == 64
    ).all()  # the first evaluation (step 2, 64 examples) reaches 0%
    assert json.loads((tmp_path / "w0.25" / "run.json").read_text())["rule"] == "bp"
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # no run reaches 99%: medians of none
        warnings.simplefilter("always")
        argv = ["efficiency", "--runs", runs[0], "--set", "target_acc=0.99", "--quiet"]
        assert run_cli(analyze_main, [*argv, "--out", str(tmp_path / "eff99")]) == 0
    assert [str(w.message) for w in caught] == []
    assert pd.read_csv(tmp_path / "eff99" / "to_target.csv").examples_to_target.isna().all()
