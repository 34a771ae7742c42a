"""Comparison report: NMNC against VNC against BP, on every benchmark, with the evidence behind it.

    python -m brain_benchmarks.report [--results reports/results.csv] [--runs DIR ...] [--analyses DIR ...] --out reports/NAME/

Writes ``index.html`` (opens from disk; figures embedded, PNGs alongside) and ``report.md``. Every
number comes from the results table, the run logs or the analysis tables; nothing is typed by hand.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.checkpoint import code_version
from nmnc.io import atomic_write_text
from nmnc.errors import NmncError, run_cli
from nmnc.plots import save, setup

from .results import read_results

RULE_ORDER = ["bp", "vnc", "nmnc", "init", "none"]


def label(row) -> str:
    """Group label: rule and architecture for trained models, the baseline name otherwise."""
    if row["rule"] == "none":
        return "pixels"
    if row["rule"] == "init":
        return f"random {row['architecture']}"
    return f"{row['rule']} {row['architecture']}"


def region_of(benchmark: str) -> str:
    """'Kriegeskorte2008.monkeyIT-rsa' -> 'monkeyIT'; user ids without the grammar map to themselves."""
    part = benchmark.split(".", 1)[-1]
    return part.rsplit("-", 1)[0] if "-" in part else part


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Committed-layer score per model group and benchmark: mean over seeds, spread, interval of one seed."""
    c = df[df.committed.astype(str).str.lower() == "true"].copy()
    if c.empty:
        raise NmncError("the results table has no committed-layer rows; score models with brain_benchmarks.score")
    c["group"] = c.apply(label, axis=1)
    c = c.drop_duplicates(["model", "checkpoint_hash", "benchmark", "version"], keep="last")
    rows = []
    for (group, bench), g in c.groupby(["group", "benchmark"], sort=False):
        rows.append({"model": group, "benchmark": bench, "region": region_of(bench), "n_seeds": len(g),
                     "score": g.score.mean(), "seed_sd": g.score.std(ddof=1) if len(g) > 1 else np.nan,
                     "ci_low": g.ci_low.mean(), "ci_high": g.ci_high.mean(), "layers": ",".join(sorted(set(g.layer)))})
    out = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(RULE_ORDER)}
    out["_o"] = out.model.map(lambda m: order.get(m.split()[0], 2.5 if m.startswith("random") else 3))
    return out.sort_values(["_o", "model", "benchmark"]).drop(columns="_o").reset_index(drop=True)


def fmt(v, digits=3) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Model x benchmark cells 'score [lo, hi] (n=, sd=)'."""
    cells = summary.assign(cell=summary.apply(
        lambda r: f"{fmt(r.score)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}] (n={r.n_seeds}" + (f", sd={fmt(r.seed_sd)})" if r.n_seeds > 1 else ")"), axis=1))
    return cells.pivot(index="model", columns="benchmark", values="cell").reindex(list(dict.fromkeys(summary.model)))


# ---- figures ---------------------------------------------------------------------------------
def fig_regions(summary, out):
    sns = setup()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=summary, x="region", y="score", hue="model", ax=ax, errorbar=None)
    xs = {t.get_text(): i for i, t in enumerate(ax.get_xticklabels())}
    models = list(dict.fromkeys(summary.model))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        g = summary[summary.model == m]
        x = [xs[r] - 0.4 + width * (j + 0.5) for r in g.region]
        yerr = np.clip([g.score - g.ci_low, g.ci_high - g.score], 0, None)  # percentile intervals can sit off-centre
        ax.errorbar(x, g.score, yerr=yerr, fmt="none", ecolor="k", capsize=2, lw=1)
    ax.set_ylabel("committed-layer score (95% CI)")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, out, "regions")


def fig_layers(df, out):
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
        sns.lineplot(data=d[d.benchmark == b], x="layer", y="score", hue="group", marker="o", ax=ax, legend=ax is axes[0][0])
        ax.set_title(b, fontsize=9)
        ax.tick_params(axis="x", rotation=45)
    return save(fig, out, "layers")


def fig_rdms(df, out, data_root=None):
    """Monkey IT RDM beside each rule's committed-layer RDM (the 92 images in the file's category order)."""
    c = df[(df.benchmark == "Kriegeskorte2008.monkeyIT-rsa") & (df.committed.astype(str).str.lower() == "true")]
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
            model = resolve_model(r.model)
        except NmncError:
            continue  # checkpoint no longer on disk: no heat map for it
        feats = extract(model, k["stimuli"], [r.layer], progress=False)[r.layer]
        panels.append((f"{r.rule} {r.architecture} {r.layer}", rsa.model_rdm(np.asarray(feats))))
    setup()
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, m) in zip(np.atleast_1d(axes), panels):
        iu = np.triu_indices(len(m), 1)
        ranked = np.zeros_like(m)
        ranked[iu] = rankdata(m[iu]) / len(iu[0])  # percentile ranks, as in Kriegeskorte et al. 2008
        ranked = ranked + ranked.T
        ax.imshow(ranked, cmap="viridis")
        ax.axhline(47.5, color="w", lw=0.8)
        ax.axvline(47.5, color="w", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([24, 70], ["animate", "inanimate"], fontsize=7)
        ax.set_yticks([])
    return save(fig, out, "rdms")


def fig_learning(runs: list[str], out):
    if not runs:
        return [], None
    from nmnc.analyze import read_run

    logs = pd.concat([read_run(r) for r in runs], ignore_index=True)
    sns = setup()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    train = logs.assign(acc_smooth=logs.groupby("run").acc.transform(lambda s: s.rolling(20, min_periods=1).mean()))
    rules = [r for r in RULE_ORDER if r in set(train.rule)] + sorted(set(train.rule) - set(RULE_ORDER))
    palette = dict(zip(rules, sns.color_palette(n_colors=len(rules))))  # one colour per rule in both panels
    sns.lineplot(data=train, x="examples", y="acc_smooth", hue="rule", hue_order=rules, palette=palette, errorbar="sd", ax=axes[0])
    axes[0].set_ylabel("training accuracy (running mean)")
    noisy = train[train.perturbations > 0]
    if len(noisy):
        sns.lineplot(data=noisy, x="perturbations", y="acc_smooth", hue="rule", palette=palette, errorbar="sd", ax=axes[1])
        axes[1].set_xscale("log")
        axes[1].set_ylabel("training accuracy (running mean)")
    axes[0].set_title("accuracy vs examples seen")
    axes[1].set_title("accuracy vs perturbations spent")
    finals = logs.dropna(subset=["test_acc"]).groupby("run").tail(1) if "test_acc" in logs else logs.iloc[0:0]
    table = finals.groupby("rule").agg(seeds=("seed", "count"), test_acc=("test_acc", "mean"), sd=("test_acc", "std"),
                                       examples=("examples", "max"), perturbations=("perturbations", "max")).reset_index()
    return save(fig, out, "learning"), table


def fig_analyses(dirs: list[str], out):
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
                g["estimator"] = g.apply(lambda r: "vnc" if r.rule == "vnc" else f"nmnc k={int(r.k)}", axis=1)
                fig, ax = plt.subplots(figsize=(5, 3.4))
                sns.lineplot(data=g, x="P", y="cos_activity", hue="estimator", marker="o", ax=ax)
                ax.set_xscale("log")
                ax.set_title("gradient cosine vs perturbations P")
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


# ---- documents -------------------------------------------------------------------------------
def provenance(df: pd.DataFrame, runs: list[str], data_root) -> pd.DataFrame:
    models = df.drop_duplicates(["model", "checkpoint_hash"])[["model", "architecture", "rule", "seed", "checkpoint_hash"]]
    settings = {}
    for r in runs:
        meta = Path(r) / "run.json"
        if meta.exists():
            settings[str(Path(r))] = json.loads(meta.read_text())["config"]
    models = models.assign(settings=models.model.map(lambda m: json.dumps({k: v for k, v in settings.get(str(Path(m)), {}).items()
                                                                         if k in ("train_examples", "steps", "epochs", "batch_size", "lr", "rule_settings")}) if str(Path(m)) in settings else ""))
    return models


def img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{path.stem}" src="data:image/png;base64,{data}"><figcaption>{path.name}</figcaption></figure>'


def write(out: Path, name: str, text: str) -> None:
    atomic_write_text(out / name, text)


def build(results: str, runs: list[str], analyses: list[str], out: str, data_root=None, title: str = "nmnc comparison report") -> Path:
    df = read_results(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_table(df)
    table = wide(summary)
    figures = []
    figures += [p for p in fig_regions(summary, out) if p.suffix == ".png"]
    figures += [p for p in fig_layers(df, out) if p.suffix == ".png"]
    try:
        figures += [p for p in fig_rdms(df, out, data_root) if p.suffix == ".png"]
    except NmncError as err:  # data not here: the report says so instead of failing
        print(f"report: no RDM heat maps ({err})", file=sys.stderr)
    learn_paths, learn_table = fig_learning(runs, out)
    figures += [p for p in learn_paths if p.suffix == ".png"]
    figures += fig_analyses(analyses, out)
    prov = provenance(df, runs, data_root)
    cv = code_version()
    stamp = time.strftime("%Y-%m-%d %H:%M")
    write(out, "summary.csv", summary.to_csv(index=False))
    # markdown
    md = [f"# {title}", "", f"Generated {stamp} from `{results}` ({len(df)} rows); code {cv['git_sha'] or 'unknown'}"
          f"{' (dirty)' if cv['git_dirty'] else ''}.", "", "## Summary: committed-layer scores",
          "", "Score [95% interval] (n = seeds, sd = spread over seeds).", "", table.to_markdown(), ""]
    if learn_table is not None:
        md += ["## Training", "", learn_table.to_markdown(index=False, floatfmt=".4f"), ""]
    md += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures] + ["", "## Provenance", "", prov.to_markdown(index=False), ""]
    write(out, "report.md", "\n".join(md))
    # html
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f0f3f7}img{max-width:100%}"
             "figure{margin:1em 0}figcaption{color:#666;font-size:12px}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>Generated {stamp} from <code>{html.escape(str(results))}</code> ({len(df)} rows); "
             f"code {html.escape(str(cv['git_sha']))}{' (dirty)' if cv['git_dirty'] else ''}.</p>",
             "<h2>Summary: committed-layer scores</h2><p>Score [95% interval] (n = seeds, sd = spread over seeds).</p>",
             table.to_html(table_id="summary", escape=True, na_rep="")]
    if learn_table is not None:
        parts += ["<h2>Training</h2>", learn_table.to_html(index=False, float_format=lambda v: f"{v:.4f}", table_id="training")]
    parts += ["<h2>Figures</h2>"] + [img_tag(p) for p in figures]
    parts += ["<h2>Provenance</h2>", prov.to_html(index=False, table_id="provenance"), "</body></html>"]
    write(out, "index.html", "\n".join(parts))
    return out / "index.html"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brain_benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="reports/results.csv")
    p.add_argument("--runs", nargs="+", default=[], help="training run folders (learning curves, settings)")
    p.add_argument("--analyses", nargs="+", default=[], help="folders written by nmnc.analyze / nmnc.bench gradient")
    p.add_argument("--data-root")
    p.add_argument("--title", default="nmnc comparison report")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    page = build(args.results, args.runs, args.analyses, args.out, args.data_root, args.title)
    print(f"wrote {page} and {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="brain_benchmarks.report"))
