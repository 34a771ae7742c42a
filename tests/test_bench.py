import pandas as pd

from nmnc.bench import main as bench_main
from nmnc.errors import run_cli
from nmnc.train import main as train_main


def test_gradient_bench_table(tmp_path, data_root, capsys):
    ck = tmp_path / "run"
    assert run_cli(train_main, ["--out", str(ck), "--train-examples", "320", "--batch-size", "32", "--steps", "3",
                                "--quiet", "--set", "width=0.25"]) == 0
    out = tmp_path / "grad.csv"
    assert run_cli(bench_main, ["gradient", "--checkpoint", str(ck), "--out", str(out), "--P", "1,4", "--k", "8",
                                "--batch", "4", "--manifold-images", "64"]) == 0
    df = pd.read_csv(out)
    assert {"rule", "layer", "n", "k", "P", "alpha", "cos_activity", "cos_weight"} <= set(df.columns)
    assert len(df) == 2 * 4 * 2 * 2  # states x layers x P x (vnc + one k)
    assert set(df.state) == {"trained", "init"} and set(df.rule) == {"vnc", "nmnc"}
    nm = df[df.rule == "nmnc"]
    assert ((nm.alpha > 0) & (nm.alpha <= 1 + 1e-6)).all() and (nm.chance == 8 / nm.n).all()
    assert df.cos_activity.between(-1, 1).all()
    assert "median over layers" in capsys.readouterr().out
