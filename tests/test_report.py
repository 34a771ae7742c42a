import json
import re
import subprocess
from dataclasses import replace

import pandas as pd
import pytest

from brain_benchmarks.report import ReportConfig, build_report
from brain_benchmarks.report import main as report_main
from brain_benchmarks.results import COLUMNS, ResultRow, append_rows
from nmnc.errors import NmncError, run_cli

REGIONS = {
    "Kriegeskorte2008.monkeyIT-rsa": ("IT", "macaque"),
    "Cowley2023.V4-pls": ("V4", "macaque"),
}


def small_results(path):
    rows = []
    for rule, seed, base in [("bp", 0, 0.30), ("bp", 1, 0.34), ("nmnc", 0, 0.25), ("vnc", 0, 0.20)]:
        for bench in ("Kriegeskorte2008.monkeyIT-rsa", "Cowley2023.V4-pls"):
            for layer, committed, bump in (
                ("conv3", False, 0.0),
                ("conv4", False, 0.01),
                ("conv4", True, 0.02),
            ):
                s = base + bump + (0.1 if bench.startswith("Cowley") else 0)
                rows.append(
                    ResultRow(
                        model=f"runs/{rule}{seed}",
                        architecture="cnn",
                        rule=rule,
                        seed=seed,
                        checkpoint_hash=f"h{rule}{seed}",
                        benchmark=bench,
                        version=1,
                        region=REGIONS[bench][0],
                        species=REGIONS[bench][1],
                        layer=layer,
                        committed=committed,
                        score=s,
                        ci_low=s - 0.05,
                        ci_high=s + 0.05,
                        raw_score=s,
                        ceiling=None,
                        n_stimuli=46,
                        time=1.0,
                    )
                )
    rows.append(
        replace(
            rows[0],
            model="pixels",
            architecture="pixels",
            rule="none",
            seed=None,
            checkpoint_hash="px",
            layer="pixels",
            committed=True,
            score=0.07,
            ci_low=0.0,
            ci_high=0.15,
        )
    )
    append_rows(path, rows)
    return pd.read_csv(path)


def report(tmp_path, results=None, **kw):
    return build_report(
        ReportConfig(
            results=results or str(tmp_path / "results.csv"),
            out=str(tmp_path / "rep"),
            data_root=str(tmp_path / "no-data"),
            **kw,
        )
    )


def test_report_tables_match_results(tmp_path):
    df = small_results(tmp_path / "results.csv")
    page = report(tmp_path)
    text = page.read_text()
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert {(r.benchmark, r.region, r.species) for r in summary.itertuples()} == {
        (b, *rs) for b, rs in REGIONS.items()
    }
    bp = summary[(summary.model == "bp cnn") & (summary.benchmark == "Cowley2023.V4-pls")].iloc[0]
    committed = df[(df.rule == "bp") & df.committed & (df.benchmark == "Cowley2023.V4-pls")]
    assert bp.n_seeds == 2 and bp.score == pytest.approx(committed.score.mean())
    assert bp.seed_sd == pytest.approx(committed.score.std())
    # the numbers shown in the HTML summary are the results table's, rounded
    table = text[text.index('id="summary"') :]
    table = table[: table.index("</table>")]
    cells = " ".join(re.findall(r"<td>(.*?)</td>", table))
    assert f"{committed.score.mean():.3f}" in cells and "(n=2, sd=" in cells
    assert (
        f"{df[(df.rule == 'vnc') & df.committed & (df.benchmark == 'Cowley2023.V4-pls')].score.iloc[0]:.3f}"  # noqa: E501
        in cells
    )
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Summary" in md and "bp cnn" in md and "regions.png" in md
    assert re.search(r'<img alt="regions" src="data:image/png;base64,', text)


def test_old_table_regions_come_from_the_registry_or_the_id(tmp_path):
    df = small_results(tmp_path / "new.csv")
    df["benchmark"] = df.benchmark.replace(
        {"Cowley2023.V4-pls": "Mine2024.V2-pls"}
    )  # a user benchmark
    old = [c for c in COLUMNS if c not in ("region", "species")]
    df[old].to_csv(
        tmp_path / "results.csv", index=False
    )  # written before region and species were columns
    report(tmp_path, results=str(tmp_path))  # the folder holding results.csv
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv", keep_default_na=False)
    regions = dict(zip(summary.benchmark, zip(summary.region, summary.species)))
    assert regions == {
        "Kriegeskorte2008.monkeyIT-rsa": ("IT", "macaque"),
        "Mine2024.V2-pls": ("V2", ""),
    }


def test_report_cli_accumulates_and_prints_config(tmp_path, capsys):
    out = tmp_path / "rep"
    args = [
        "--results",
        "r.csv",
        "--runs",
        "a",
        "--runs",
        "b",
        "c",
        "--analyses",
        "x",
        "--analyses",
        "y",
        "--out",
        str(out),
        "--title",
        "T",
        "--print-config",
    ]
    assert run_cli(report_main, args) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg == {
        "results": "r.csv",
        "runs": ["a", "b", "c"],
        "analyses": ["x", "y"],
        "out": str(out),
        "data_root": None,
        "title": "T",
        "n_boot": 1000,
        "notes": [],
        "sections": [],
    }
    assert not out.exists()
    assert run_cli(report_main, ["--results", "r.csv"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_report_errors(tmp_path, capsys):
    assert (
        run_cli(
            report_main, ["--results", str(tmp_path / "none.csv"), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "no results table at" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert (
        run_cli(report_main, ["--results", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "r")])
        == 2
    )
    assert "lacks the columns" in capsys.readouterr().err
    (tmp_path / "bin.csv").write_bytes(b"\x00\xff\xfe garbage \x00")
    assert (
        run_cli(report_main, ["--results", str(tmp_path / "bin.csv"), "--out", str(tmp_path / "r")])
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
    small_results(tmp_path / "results.csv")
    (tmp_path / "taken").write_text("")
    for argv in (["--results", str(tmp_path)], ["--results", str(tmp_path / "results.csv")]):
        assert run_cli(report_main, argv + ["--out", str(tmp_path / "taken")]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "is an existing file" in err and len(err.splitlines()) == 1
    with pytest.raises(NmncError, match="is an existing file"):
        build_report(ReportConfig(results=str(tmp_path), out=str(tmp_path / "taken")))


def test_report_renders_in_headless_chromium(tmp_path, chromium):
    browser = chromium  # the fixture installs Chromium from Debian's packages when it is missing
    small_results(tmp_path / "results.csv")
    page = report(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 10  # not blank
    dark = (img[:450] < 128).mean()
    assert dark > 0.01  # text of the title and the summary table at the top of the page
    # the summary table is in the DOM Chromium rendered
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'id="summary"' in dom and "bp cnn" in dom
