"""Comparison report: NMNC against VNC against BP, on every benchmark, with the evidence behind it.

    python -m brain_benchmarks.report --results reports/default [--runs DIR ...]
        [--analyses DIR ...] --out DIR

Writes DIR/index.html (opens from disk; figures embedded), DIR/report.md, DIR/summary.csv (mean
over seeds with an interval of the seed mean, n_seeds), DIR/differences.csv (paired differences
NMNC - VNC, NMNC - BP and each rule - read-out-only, with intervals and a sentence each) and the
figures as PNG and SVG. Every number comes from the results table, the per-stimulus artefacts
beside it, the run logs and checkpoints (test accuracy) or the analysis tables; nothing is typed by
hand. ``--results`` takes the CSV or the folder holding results.csv
(the ``--out`` folder of brain_benchmarks.score).
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.checkpoint import code_version
from nmnc.cli import entry, out_dir, parser, print_config, require_out, results_file
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.plots import learning_curves, save, setup

from .accuracy import accuracy_rows, is_accuracy
from .paired import (
    T_SEEDS,
    Paired,
    committed_rows,
    fig_differences,
    group_interval,
    label,
    latest,
    materials_for,
    paired_statistics,
    signed,
)
from .results import read_results

PROG = "python -m brain_benchmarks.report"
RULE_ORDER = ["bp", "vnc", "vnc-unmatched", "nmnc", "readout", "init", "none"]


@dataclass(frozen=True)
class ReportConfig:
    """What ``build_report`` reads and where it writes."""

    results: str  # a results table written by brain_benchmarks.score, or the folder holding it
    runs: tuple[str, ...] = ()  # training run folders: learning curves and settings
    analyses: tuple[str, ...] = ()  # folders of analysis tables (alignment, gradient, width)
    out: str = ""  # required: the folder for index.html, report.md, summary.csv, figures
    data_root: str | None = None  # for the RDM heat maps (the 92-image data)
    title: str = "nmnc comparison report"
    n_boot: int = 1000  # resamples (seeds and stimuli) behind every interval of the paired stats
    notes: tuple[str, ...] = ()  # paragraphs the experiment adds (its budget and what it costs)
    sections: tuple[str, ...] = ()  # folders holding a section.json (the recurrent experiment)


def region_of(benchmark: str) -> str:
    """The region named in an id, for tables without a region: 'Cowley2023.V4-pls' -> 'V4'."""
    part = benchmark.split(".", 1)[-1]
    return part.rsplit("-", 1)[0] if "-" in part else part


def _first(values: pd.Series) -> str:
    v = values.dropna().astype(str)
    v = v[v != ""]
    return v.iloc[0] if len(v) else ""


def summary_table(df: pd.DataFrame, intervals: dict | None = None) -> pd.DataFrame:
    """Committed-layer score per model group and benchmark: mean over seeds, spread over seeds, and
    a 95% interval of the seed mean (``intervals``: (group, benchmark) -> (lo, hi, method) from
    the paired statistics; else a t-interval over seeds)."""
    c = committed_rows(df)
    rows = []
    for (group, bench), g in c.groupby(["group", "benchmark"], sort=False):
        region = _first(g.region) if "region" in g else ""
        species = _first(g.species) if "species" in g else ""
        norm = _first(g.normalisation) if "normalisation" in g else ""
        lo, hi, method = (intervals or {}).get((group, bench)) or group_interval(g, {})
        rows.append(
            {
                "model": group,
                "benchmark": bench,
                "region": region or region_of(bench),
                "species": species,
                "normalisation": norm or "",
                "n_seeds": len(g),
                "score": g.score.mean(),
                "seed_sd": g.score.std(ddof=1) if len(g) > 1 else np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "ci_method": method,
                "layers": ",".join(sorted(set(g.layer.astype(str)))),
            }
        )
    out = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(RULE_ORDER)}
    out["_o"] = out.model.map(
        lambda m: order.get(m.split()[0], 2.5 if m.startswith("random") else 3)
    )
    return out.sort_values(["_o", "model", "benchmark"]).drop(columns="_o").reset_index(drop=True)


def fmt(v: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; empty for missing values."""
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def cell(r: pd.Series) -> str:
    """'score [lo, hi] (n=, sd=)' of one summary row."""
    spread = f", sd={fmt(r.seed_sd)}" if r.n_seeds > 1 else ""
    return f"{fmt(r.score)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}] (n={r.n_seeds}{spread})"


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Model x benchmark cells 'score [lo, hi] (n=, sd=)'."""
    cells = summary.assign(cell=summary.apply(cell, axis=1))
    table = cells.pivot(index="model", columns="benchmark", values="cell")
    return table.reindex(list(dict.fromkeys(summary.model)))


# ---- figures ---------------------------------------------------------------------------------
def fig_regions(summary: pd.DataFrame, out: Path) -> list[Path]:
    """Committed-layer score per brain area (species and region) and model, with 95% intervals."""
    sns = setup()
    import matplotlib.pyplot as plt

    # benchmarks of the same species, region and scale share a bar (their mean); scores on
    # different scales (RSA raw/ceiling, V4 r2/ceiling or r2) never share one; accuracy has its own
    summary = summary[~summary.benchmark.map(is_accuracy)]
    norm = summary.normalisation.fillna("") if "normalisation" in summary else ""
    scale = norm.map(lambda n: f"\n[{n}]" if n and n != "none" else "") if len(norm) else ""
    area = (summary.species.fillna("") + " " + summary.region + scale).str.strip()
    d = (
        summary.assign(area=area)
        .groupby(["model", "area"], sort=False, as_index=False)[["score", "ci_low", "ci_high"]]
        .mean()
    )
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=d, x="area", y="score", hue="model", ax=ax, errorbar=None)
    xs = {t.get_text(): i for i, t in enumerate(ax.get_xticklabels())}
    models = list(dict.fromkeys(d.model))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        g = d[d.model == m]
        x = [xs[a] - 0.4 + width * (j + 0.5) for a in g.area]
        yerr = np.clip(
            [g.score - g.ci_low, g.ci_high - g.score], 0, None
        )  # percentile intervals can sit off-centre
        ax.errorbar(x, g.score, yerr=yerr, fmt="none", ecolor="k", capsize=2, lw=1)
    ax.set_xlabel("")
    ax.set_ylabel("committed-layer score (95% CI)")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, out, "regions")


def fig_layers(df: pd.DataFrame, out: Path) -> list[Path]:
    """Score of every layer on all stimuli, per benchmark and model group."""
    sns = setup()
    import matplotlib.pyplot as plt

    d = df[df.committed.astype(str).str.lower() == "false"].copy()
    d = d[d.rule != "none"]
    if d.empty:
        return []
    d["group"] = d.apply(label, axis=1)
    benches = list(dict.fromkeys(d.benchmark))
    fig, axes = plt.subplots(1, len(benches), figsize=(4 * len(benches), 3.4), squeeze=False)
    for ax, b in zip(axes[0], benches):
        sns.lineplot(
            data=d[d.benchmark == b],
            x="layer",
            y="score",
            hue="group",
            marker="o",
            ax=ax,
            legend=ax is axes[0][0],
        )
        ax.set_title(b, fontsize=9)
        ax.tick_params(axis="x", rotation=45)
    return save(fig, out, "layers")


def fig_rdms(df: pd.DataFrame, out: Path, data_root: str | None = None) -> list[Path]:
    """Monkey IT RDM beside each rule's committed-layer RDM (the 92 images in the file's category
    order)."""
    c = df[
        (df.benchmark == "Kriegeskorte2008.monkeyIT-rsa")
        & (df.committed.astype(str).str.lower() == "true")
    ]
    c = c[c.rule.isin(["bp", "vnc", "nmnc"])].drop_duplicates("rule", keep="last")
    if c.empty:
        return []
    from . import rsa
    from .datasets import kriegeskorte2008
    from .extract import extract
    from .models import resolve_model

    k = kriegeskorte2008(data_root)
    panels = [("monkey IT", k["monkey"])]
    for _, r in c.iterrows():
        try:
            model = resolve_model(r.model, build=False, progress=False)
        except NmncError:
            # checkpoint no longer here (a report never builds a zoo model): no heat map for it
            continue
        feats = extract(model, k["stimuli"], [r.layer], progress=False)[r.layer]
        panels.append((f"{r.rule} {r.architecture} {r.layer}", rsa.model_rdm(np.asarray(feats))))
    setup()
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, m) in zip(np.atleast_1d(axes), panels):
        iu = np.triu_indices(len(m), 1)
        ranked = np.zeros_like(m)
        ranked[iu] = rankdata(m[iu]) / len(
            iu[0]
        )  # percentile ranks, as in Kriegeskorte et al. 2008
        ranked = ranked + ranked.T
        ax.imshow(ranked, cmap="viridis")
        ax.axhline(47.5, color="w", lw=0.8)
        ax.axvline(47.5, color="w", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([24, 70], ["animate", "inanimate"], fontsize=7)
        ax.set_yticks([])
    return save(fig, out, "rdms")


def fig_learning(runs: tuple[str, ...], out: Path) -> tuple[list[Path], pd.DataFrame | None]:
    """Training accuracy against examples and perturbations, and a table of final test accuracy."""
    if not runs:
        return [], None
    from nmnc.analysis.efficiency import read_run

    logs = pd.concat([read_run(r) for r in runs], ignore_index=True)
    train = logs.assign(
        acc_smooth=logs.groupby("run").acc.transform(lambda s: s.rolling(20, min_periods=1).mean())
    )
    rules = [r for r in RULE_ORDER if r in set(train.rule)] + sorted(
        set(train.rule) - set(RULE_ORDER)
    )
    fig, axes = learning_curves(
        train, "acc_smooth", rules, "sd", "training accuracy (running mean)"
    )
    axes[0].set_title("accuracy vs examples seen")
    axes[1].set_title("accuracy vs perturbations spent")
    finals = (
        logs.dropna(subset=["test_acc"]).groupby("run").tail(1)
        if "test_acc" in logs
        else logs.iloc[0:0]
    )
    table = (
        finals.groupby("rule")
        .agg(
            seeds=("seed", "count"),
            test_acc=("test_acc", "mean"),
            sd=("test_acc", "std"),
            examples=("examples", "max"),
            perturbations=("perturbations", "max"),
        )
        .reset_index()
    )
    return save(fig, out, "learning"), table


def fig_analyses(dirs: tuple[str, ...], out: Path) -> list[Path]:
    """Figures of the analysis tables found in ``dirs`` (alignment, gradient quality, width)."""
    paths, sns = [], None
    for d in map(Path, dirs):
        if (d / "alignment.csv").exists():
            sns = sns or setup()
            import matplotlib.pyplot as plt

            a = pd.read_csv(d / "alignment.csv")
            fig, ax = plt.subplots(figsize=(5, 3.4))
            sns.lineplot(data=a, x="k", y="alpha", hue="layer", style="state", ax=ax)
            ch = a[(a.state == a.state.iloc[0]) & (a.layer == a.layer.iloc[-1])]
            ax.plot(ch.k, ch.chance, "k:", label="chance k/n")
            ax.set_xscale("log")
            ax.set_title(f"Jacobian-manifold alignment ({d.name})")
            paths += save(fig, out, f"alignment_{d.name}")
        for csv in sorted(d.glob("*.csv")):
            cols = set(pd.read_csv(csv, nrows=1).columns)
            if {"rule", "P", "cos_activity"} <= cols:
                sns = sns or setup()
                import matplotlib.pyplot as plt

                g = pd.read_csv(csv)
                g = g[g.get("state", "trained") == "trained"] if "state" in g else g
                value = "rms_cos" if "rms_cos" in g else "cos_activity"
                g["estimator"] = g.apply(estimator_label, axis=1)
                fig, ax = plt.subplots(figsize=(5.5, 3.6))
                sns.lineplot(data=g, x="P", y=value, hue="estimator", marker="o", ax=ax)
                if "rms_cos_theory" in g:
                    theory = g[g.feedback.fillna("example") == "example"] if "feedback" in g else g
                    theory = theory.groupby(["estimator", "P"], as_index=False).rms_cos_theory
                    for _, t in theory.median().groupby("estimator"):
                        ax.plot(t.P, t.rms_cos_theory, "k:", lw=0.8)
                ax.set_xscale("log")
                ax.set_ylabel("sqrt(mean cos^2)" if value == "rms_cos" else value)
                ax.set_title("gradient cosine vs P (dotted: theory)")
                paths += save(fig, out, f"gradient_{d.name}")
        if (d / "width.csv").exists():
            sns = sns or setup()
            import matplotlib.pyplot as plt

            w = pd.read_csv(d / "width.csv")
            fig, ax = plt.subplots(figsize=(5, 3.4))
            sns.lineplot(data=w, x="n", y="pr", hue="layer", marker="o", ax=ax)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title("dimension (PR) vs layer size")
            paths += save(fig, out, f"width_{d.name}")
    return [p for p in paths if p.suffix == ".png"]


def estimator_label(r: pd.Series) -> str:
    """A row of the gradient table as one estimator: rule, k for nmnc, and amortised feedback."""
    name = str(r.rule)
    if r.rule == "nmnc":
        shape = r.get("noise_shape")
        name = f"nmnc k={int(r.k)}" + (f" {shape}" if isinstance(shape, str) else "")
    return f"{name} amortised" if r.get("feedback") == "amortised" else name


# ---- documents -------------------------------------------------------------------------------
SETTINGS_SHOWN = (
    "train_examples",
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "readout_lr",
    "rule_settings",
)
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f0f3f7}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{color:#666;font-size:12px}"
)
CAPTION = (
    "Mean score over seeds [95% interval of the seed mean; how it is computed: summary.csv "
    "ci_method] (n = seeds, sd = spread over seeds)."
)


def provenance(df: pd.DataFrame, runs: tuple[str, ...]) -> pd.DataFrame:
    """One row per scored model: identity, weights hash, and the run's key settings where known."""
    cols = ["model", "architecture", "rule", "seed", "checkpoint_hash"]
    models = df.drop_duplicates(["model", "checkpoint_hash"])[cols]
    settings = {}
    for r in runs:
        meta = Path(r) / "run.json"
        if meta.exists():
            config = json.loads(meta.read_text())["config"]
            settings[str(Path(r))] = json.dumps(
                {k: v for k, v in config.items() if k in SETTINGS_SHOWN}
            )
    return models.assign(settings=models.model.map(lambda m: settings.get(str(Path(m)), "")))


def img_tag(path: Path) -> str:
    """A figure embedded in the page (base64 PNG), so index.html opens from disk alone."""
    data = base64.b64encode(path.read_bytes()).decode()
    img = f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'
    return f"<figure>{img}<figcaption>{path.name}</figcaption></figure>"


def write(out: Path, name: str, text: str) -> None:
    """Write one file of the report atomically."""
    atomic_write_text(out / name, text)


@dataclass
class Document:
    """Everything report.md and index.html show."""

    title: str
    origin: str
    table: pd.DataFrame  # the summary, model x benchmark
    learn_table: pd.DataFrame | None
    figures: list[Path]
    prov: pd.DataFrame
    paired: Paired
    method: str  # how the intervals were computed, in words
    selection: pd.DataFrame | None = None  # step sizes tried and chosen on the validation split
    notes: tuple[str, ...] = ()
    sections: list[dict] = field(default_factory=list)  # read from section.json files


def read_section(folder: Path, out: Path) -> dict:
    """A section.json (title, paragraphs, tables as records, figure names) with its figures'
    paths: relative to the report for report.md, absolute for embedding."""
    path = Path(folder) / "section.json"
    if not path.is_file():
        raise NmncError(f"no section.json in {folder}; give folders written by the main job")
    try:
        sec = json.loads(path.read_text())
        if not {"title", "paragraphs", "tables"} <= set(sec):
            raise ValueError("missing title, paragraphs or tables")
    except (ValueError, UnicodeDecodeError) as err:
        raise NmncError(f"{path} is not a section written by the main job ({err})") from None
    sec["paths"] = [Path(folder) / name for name in sec.get("figures", [])]
    sec["links"] = [os.path.relpath(p, out) for p in sec["paths"]]
    return sec


def section_markdown(sec: dict) -> list[str]:
    """A section of report.md."""
    md = [f"## {sec['title']}", ""] + [line for p in sec["paragraphs"] for line in (p, "")]
    for t in sec["tables"]:
        md += [f"**{t['caption']}**", "", pd.DataFrame(t["records"]).to_markdown(index=False), ""]
    md += [f"![{Path(link).stem}]({link})" for link in sec["links"]]
    return md + [""]


def section_html(sec: dict) -> list[str]:
    """A section of index.html, figures embedded."""
    parts = [f"<h2>{html.escape(sec['title'])}</h2>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in sec["paragraphs"]]
    for t in sec["tables"]:
        frame = pd.DataFrame(t["records"])
        parts += [f"<h3>{html.escape(t['caption'])}</h3>", frame.to_html(index=False, na_rep="")]
    return parts + [img_tag(p) for p in sec["paths"]]


SELECTION = (
    "Step sizes chosen on the validation split (never the test split): the read-out step by the "
    "read-out-only control, shared by every rule; then each rule's hidden-layer step at that "
    "read-out step, at the first seed. The chosen run is that seed's final run."
)


def selection_table(path: Path) -> pd.DataFrame | None:
    """The protocol's selection table (selection.csv in the report folder), as shown."""
    if not path.exists():
        return None
    t = pd.read_csv(path)
    span = t.groupby(["rule", "grid", "setting"]).value.transform
    at_end = (t.value == span("min")) | (t.value == span("max"))
    edge = t.selected & (span("count") > 1) & at_end
    t["selected"] = t["selected"].map({True: "chosen", False: ""})
    t.loc[edge, "selected"] = "chosen (edge of the grid: widen it to be sure)"
    return t[["rule", "grid", "setting", "value", "fixed", "val_acc", "selected"]]


def differences_table(d: pd.DataFrame, names: dict) -> pd.DataFrame:
    """The differences as shown: comparison, seeds, difference [interval], p, resolved."""
    return pd.DataFrame(
        {
            "benchmark": d.benchmark,
            "comparison": [f"{names.get(a, a)} \u2212 {names.get(b, b)}" for a, b in zip(d.a, d.b)],
            "n_seeds": d.n_seeds,
            "difference [95% interval]": [
                f"{signed(r['diff'])} [{signed(r.ci_low)}, {signed(r.ci_high)}]"
                if np.isfinite(r.ci_low)
                else signed(r["diff"])
                for _, r in d.iterrows()
            ],
            "p": d.p.map(lambda v: fmt(v)),
            "resolved": d.resolved.map({True: "yes", False: "no"}),
        }
    )


def method_text(n_boot: int) -> str:
    """How the summary and difference intervals are computed (shown in the report)."""
    return (
        f"Intervals are 95% percentile intervals from {n_boot} resamples that draw seeds and "
        "stimuli with replacement, the same draws for both rules of a comparison; runs are paired "
        "by seed (same initialisation, batches and noise) and grouped by everything but the seed. "
        "The stimuli are those each committed score is computed on (RSA: the held-out half, model "
        "and brain RDMs subsampled with rsatoolbox, with several subject RDMs the mean of the "
        "per-subject comparisons, subjects fixed; V4: every image, each in its cross-fitted half, "
        "the k-fold held-out predictions correlated again and each half's r**2 / ceiling "
        "averaged; accuracy: the test images each run was evaluated on); the committed layer and "
        "the regression fits stay fixed, and scores keep the results table's ceiling (so, unlike "
        "the results table's own V4 interval, these leave the ceiling's uncertainty out). The "
        "summary interval is an interval of the seed mean, not a mean of intervals; where a run "
        f"has no per-stimulus artefact it is a {T_SEEDS}. p is rsatoolbox's two-sided bootstrap "
        "test of the pair. "
        "A difference is resolved at this budget when its interval excludes zero."
    )


def claims(p: Paired) -> list[str]:
    """One plain sentence per difference, then the comparisons left out."""
    return list(p.differences.claim) + p.notes


def markdown(doc: Document) -> str:
    """report.md: the summary table, paired differences, training table, figure links and
    provenance."""
    md = [f"# {doc.title}", "", doc.origin, "", "## Summary: committed-layer scores", "", CAPTION]
    md += ["", doc.table.to_markdown(), "", "## Paired differences", ""]
    md += [f"- {c}" for c in claims(doc.paired)] + [""]
    if len(doc.paired.differences):
        table = differences_table(doc.paired.differences, doc.paired.names)
        md += [table.to_markdown(index=False), ""]
    md += [doc.method, ""]
    md += [note for n in doc.notes for note in (n, "")]
    if doc.selection is not None:
        md += ["## Step sizes", "", SELECTION, "", doc.selection.to_markdown(index=False), ""]
    if doc.learn_table is not None:
        md += ["## Training", "", doc.learn_table.to_markdown(index=False, floatfmt=".4f"), ""]
    md += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in doc.figures] + [""]
    md += [line for sec in doc.sections for line in section_markdown(sec)]
    md += ["## Provenance", "", doc.prov.to_markdown(index=False), ""]
    return "\n".join(md)


def page(doc: Document) -> str:
    """index.html: the same content with the figures embedded."""
    title = html.escape(doc.title)
    head = f"<meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
    parts = [
        f"<!doctype html><html><head>{head}</head><body>",
        f"<h1>{title}</h1>",
        f"<p>{html.escape(doc.origin)}</p>",
        "<h2>Summary: committed-layer scores</h2>",
        f"<p>{CAPTION}</p>",
        doc.table.to_html(table_id="summary", escape=True, na_rep=""),
        "<h2>Paired differences</h2>",
        "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in claims(doc.paired)) + "</ul>",
    ]
    if len(doc.paired.differences):
        table = differences_table(doc.paired.differences, doc.paired.names)
        parts.append(table.to_html(index=False, table_id="differences", na_rep=""))
    parts.append(f"<p>{html.escape(doc.method)}</p>")
    parts += [f"<p>{html.escape(n)}</p>" for n in doc.notes]
    if doc.selection is not None:
        parts += [
            "<h2>Step sizes</h2>",
            f"<p>{html.escape(SELECTION)}</p>",
            doc.selection.to_html(index=False, table_id="selection", na_rep=""),
        ]
    if doc.learn_table is not None:
        training = doc.learn_table.to_html(
            index=False, float_format=lambda v: f"{v:.4f}", table_id="training"
        )
        parts += ["<h2>Training</h2>", training]
    parts += ["<h2>Figures</h2>"] + [img_tag(p) for p in doc.figures]
    parts += [part for sec in doc.sections for part in section_html(sec)]
    parts += [
        "<h2>Provenance</h2>",
        doc.prov.to_html(index=False, table_id="provenance"),
        "</body></html>",
    ]
    return "\n".join(parts)


def trained_models(df: pd.DataFrame, runs: tuple[str, ...]) -> list[str]:
    """Trained models of the results table (not baselines), then run folders not in it."""
    trained = df[~df.rule.isin(["none", "init"])].model.astype(str)
    scored = {str(Path(m)) for m in trained}
    return list(dict.fromkeys(trained)) + [r for r in runs if str(Path(r)) not in scored]


def build_report(cfg: ReportConfig) -> Path:
    """Write the report into ``cfg.out``; returns the path of index.html."""
    if not cfg.out:
        raise NmncError("the report needs an output folder: ReportConfig(out=DIR), or --out DIR")
    if cfg.n_boot < 100:
        raise NmncError(f"n_boot (--n-boot) must be at least 100 resamples, got {cfg.n_boot}")
    out = Path(out_dir(cfg.out, "index.html, report.md, summary.csv and the figures"))
    results = results_file(cfg.results)
    df = latest(read_results(results))  # one definition per benchmark: its newest rows
    for kind, paths in (("run", cfg.runs), ("analysis", cfg.analyses)):
        for path in paths:
            if not Path(path).is_dir():
                raise NmncError(
                    f"no {kind} folder at {path}; "
                    "give folders written by nmnc.train or nmnc.analyze"
                )
    out.mkdir(parents=True, exist_ok=True)
    sections = [read_section(Path(f), out) for f in cfg.sections]
    committed_rows(df)  # no committed rows: a one-line error before any work
    acc, acc_mats = accuracy_rows(trained_models(df, cfg.runs), out, cfg.data_root)
    table_all = pd.concat([df, acc], ignore_index=True) if len(acc) else df
    c = committed_rows(table_all)
    paired = paired_statistics(c, materials_for(c, results, acc_mats), cfg.n_boot)
    summary = summary_table(table_all, paired.intervals)
    figures = fig_differences(paired.differences, out, paired)
    figures += fig_regions(summary, out) + fig_layers(df, out)
    try:
        figures += fig_rdms(df, out, cfg.data_root)
    except NmncError as err:  # data not here: the report says so instead of failing
        print(f"report: no RDM heat maps ({err})", file=sys.stderr)
    learn_paths, learn_table = fig_learning(cfg.runs, out)
    figures += learn_paths + fig_analyses(cfg.analyses, out)
    figures = [p for p in figures if p.suffix == ".png"]
    cv = code_version()
    code = f"{cv['git_sha'] or 'unknown'}{' (dirty)' if cv['git_dirty'] else ''}"
    origin = (
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} from {results} ({len(df)} rows); code {code}."
    )
    table, prov = wide(summary), provenance(df, cfg.runs)
    doc = Document(
        cfg.title,
        origin,
        table,
        learn_table,
        figures,
        prov,
        paired,
        method_text(cfg.n_boot),
        selection_table(out / "selection.csv"),
        cfg.notes,
        sections,
    )
    write(out, "summary.csv", summary.to_csv(index=False))
    write(out, "differences.csv", paired.differences.to_csv(index=False))
    write(out, "report.md", markdown(doc))
    write(out, "index.html", page(doc))
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build a ReportConfig, call :func:`build_report`."""
    p = parser(
        PROG,
        __doc__,
        out="folder for index.html, report.md, summary.csv and the figures",
        quiet=False,
    )
    p.add_argument(
        "--results",
        default="reports/default",
        metavar="CSV|DIR",
        help="results table written by brain_benchmarks.score, or the folder holding its "
        "results.csv (default reports/default, the main job's)",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR",
        help="training run folders: learning curves and settings (repeatable)",
    )
    p.add_argument(
        "--analyses",
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR",
        help="folders of analysis tables: alignment, gradient, width (repeatable)",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR",
        help="folders holding a section.json, e.g. the main job's <report>/recurrent (repeatable)",
    )
    p.add_argument("--title", default=ReportConfig.__dataclass_fields__["title"].default)
    p.add_argument(
        "--n-boot",
        type=int,
        default=ReportConfig.__dataclass_fields__["n_boot"].default,
        metavar="N",
        help="resamples of seeds and stimuli behind the intervals (default %(default)s)",
    )
    args = p.parse_args(argv)
    cfg = ReportConfig(
        results=args.results,
        runs=tuple(args.runs),
        analyses=tuple(args.analyses),
        out=args.out or "",
        data_root=args.data_root,
        title=args.title,
        n_boot=args.n_boot,
        sections=tuple(args.sections),
    )
    if args.out:
        out_dir(args.out, "the report")
    if args.print_config:
        return print_config(cfg)
    require_out(args, "the report")
    page = build_report(cfg)
    print(f"wrote {page} and {Path(cfg.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.report")
