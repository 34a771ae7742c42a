"""Paired statistics of the report: per group an interval of the seed mean, and the differences
NMNC - VNC, NMNC - BP and each rule - read-out-only on every benchmark and on test accuracy.

Runs are grouped by everything but their seed (rule, architecture, grid point) and paired by seed:
rule a seed s and rule b seed s share initialisation, batches and noise. Where every run of a
comparison has its per-stimulus artefact, the 95% interval resamples seeds and stimuli together,
the same draws for both rules (:mod:`brain_benchmarks.stats`); otherwise it is a t-interval over
the seeds (none for one seed). Each difference gets a plain sentence built from its numbers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.errors import NmncError

from . import stats
from .accuracy import is_accuracy
from .artefacts import FOLDER, artefact_path, load_artefact

RULE_NAMES = {"bp": "BP", "vnc": "VNC", "nmnc": "NMNC", "readout": "read-out-only"}
PAIRS = (
    ("nmnc", "vnc"),
    ("nmnc", "bp"),
    ("bp", "readout"),
    ("vnc", "readout"),
    ("nmnc", "readout"),
)
COLUMNS = ["benchmark", "a", "b", "diff", "ci_low", "ci_high", "n_seeds", "p", "resolved"]
COLUMNS += ["method", "claim"]
BOOT = "bootstrap over seeds and stimuli"
BOOT_ONE = "bootstrap over stimuli (one seed)"
T_SEEDS = "t-interval over seeds"
ONE_RUN = "the run's own interval (one seed)"


def recipe_key(row: pd.Series) -> tuple[str, str, str]:
    """(rule, architecture, grid point) of a row: what its runs share but the seed."""
    rule, arch = str(row["rule"]), str(row["architecture"])
    pattern = rf"{re.escape(rule)}_{re.escape(arch)}_(.+)_s\d+"
    point = re.fullmatch(pattern, Path(str(row["model"])).name)
    return rule, arch, point.group(1).replace("_", " ") if point else ""


def label(row: pd.Series) -> str:
    """Group label: rule and architecture for trained models, the baseline name otherwise."""
    if row["rule"] == "none":
        return "pixels"
    if row["rule"] == "init":
        return f"random {row['architecture']}"
    rule, arch, point = recipe_key(row)
    # a grid point of an experiment (run folder <rule>_<arch>_<setting>_s<seed>) is its own group
    return f"{rule} {arch} {point}" if point else f"{rule} {arch}"


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each benchmark's newest version and, within it, of the settings of its last row:
    one definition per benchmark in a report (older rows are left out)."""
    if "version" in df:
        v = pd.to_numeric(df.version, errors="coerce").fillna(0)
        df = df[v == v.groupby(df.benchmark).transform("max")]
    if "settings" in df:
        s = df.settings.fillna("").astype(str)
        df = df[s == s.groupby(df.benchmark).transform("last")]
    return df


def committed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The committed-layer rows of each benchmark's latest definition (:func:`latest`), the last
    one per model and benchmark, with their group."""
    c = df[df.committed.astype(str).str.lower() == "true"].copy()
    if c.empty:
        raise NmncError(
            "the results table has no committed-layer rows; "
            "score models with brain_benchmarks.score"
        )
    c = latest(c)
    c = c.drop_duplicates(["model", "benchmark", "version"], keep="last").reset_index(drop=True)
    c["group"] = c.apply(label, axis=1)
    return c


def load_materials(c: pd.DataFrame, folder: Path) -> dict[tuple[str, str], dict]:
    """Per-stimulus artefacts of the committed rows, keyed by (model, benchmark)."""
    out = {}
    for r in c.itertuples():
        path = artefact_path(folder, r.benchmark, int(r.version), str(r.checkpoint_hash))
        m = load_artefact(path) if path.exists() else None
        if m is not None and str(m.get("layer", r.layer)) == str(r.layer):
            out[(r.model, r.benchmark)] = m
    return out


def _text(values: pd.Series) -> str:
    """The first non-empty text of a column ('' when there is none)."""
    return next((v for v in values if isinstance(v, str) and v), "")


def bench_name(benchmark: str, region: str = "", species: str = "") -> str:
    """How a sentence names a benchmark: 'accuracy', 'monkey IT', 'human IT', 'monkey V4'."""
    if is_accuracy(benchmark):
        return "accuracy"
    word = {"macaque": "monkey"}.get(str(species), str(species or ""))
    return f"{word} {region}".strip() or benchmark


def group_name(group: str) -> str:
    """'nmnc cnn P4' -> 'NMNC (cnn P4)'."""
    rule, _, rest = group.partition(" ")
    return f"{RULE_NAMES.get(rule, rule)} ({rest})" if rest else RULE_NAMES.get(rule, rule)


def signed(v: float) -> str:
    """'+0.012' or '−0.020' (a true minus sign)."""
    return f"{v:+.3f}".replace("-", "\u2212")


def claim(r, names: dict[str, str]) -> str:
    """The plain sentence of one difference row, built from its numbers (``names``: group label
    -> how the sentence names it)."""
    a, b = names.get(r.a, r.a), names.get(r.b, r.b)
    head = f"{a} \u2212 {b} on {r.name}: {signed(r.diff)}"
    seeds = f"{r.n_seeds} seeds" if r.n_seeds != 1 else "1 seed (only stimuli resampled)"
    if not np.isfinite(r.ci_low):
        return (
            f"{head} over 1 seed, without an interval (no per-stimulus artefacts to resample); "
            f"{a} is not shown to beat {b}: not resolved at this budget."
        )
    head += f" [{signed(r.ci_low)}, {signed(r.ci_high)}] over {seeds}"
    if r.ci_low > 0:
        return f"{head}; {a} beats {b}, resolved at this budget."
    if r.ci_high < 0:
        return f"{head}; {a} does not beat {b} ({b} is higher), resolved at this budget."
    return f"{head}; {a} does not beat {b} at this budget: not resolved."


@dataclass
class Paired:
    """What the report shows of the paired statistics."""

    intervals: dict = field(default_factory=dict)  # (group, benchmark) -> (lo, hi, method)
    differences: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    notes: list[str] = field(default_factory=list)  # comparisons left out, and why
    names: dict = field(default_factory=dict)  # group label -> display name ('NMNC')
    bench_names: dict = field(default_factory=dict)  # benchmark -> 'monkey IT', 'accuracy'


def _by_seed(g: pd.DataFrame) -> pd.DataFrame:
    g = g[g.seed.notna()].copy()
    g["seed"] = g.seed.astype(int)
    return g.drop_duplicates("seed", keep="last").set_index("seed").sort_index()


def _matches(c: pd.DataFrame, rule: str, arch: str, point: str) -> list[str]:
    """Groups of ``rule`` on ``arch`` at the same grid point (or without one: a rule without
    that setting)."""
    g = c[(c.key_rule == rule) & (c.key_arch == arch)]
    return list(
        dict.fromkeys(g[(g.key_point == point) | (g.key_point == "") | (point == "")].group)
    )


def group_interval(g: pd.DataFrame, boot: dict) -> tuple[float, float, str]:
    """95% interval of a group's seed mean: bootstrap over seeds and stimuli when every run has
    its resampled scores in ``boot`` (model -> (B,)), else a t-interval over seeds, else (one
    seed) the run's own interval; with how it was computed."""
    if all(m in boot for m in g.model):
        (means,) = stats.seed_means([np.stack([boot[m] for m in g.model])])
        return (*stats.interval(means), BOOT if len(g) > 1 else BOOT_ONE)
    if len(g) > 1:
        return (*stats.t_interval(g.score), T_SEEDS)
    return float(g.ci_low.iloc[0]), float(g.ci_high.iloc[0]), ONE_RUN


def _difference(ga: pd.DataFrame, gb: pd.DataFrame, boot: dict) -> dict | None:
    a, b = _by_seed(ga), _by_seed(gb)
    seeds = sorted(set(a.index) & set(b.index))
    if not seeds:
        return None
    a, b = a.loc[seeds], b.loc[seeds]
    row = {"diff": float(a.score.mean() - b.score.mean()), "n_seeds": len(seeds)}
    if all(m in boot for m in [*a.model, *b.model]):
        sa = np.stack([boot[m] for m in a.model])
        sb = np.stack([boot[m] for m in b.model])
        return {**row, **stats.paired(sa, sb), "method": BOOT if len(seeds) > 1 else BOOT_ONE}
    if len(seeds) > 1:
        from scipy.stats import ttest_rel

        lo, hi = stats.t_interval(a.score.values - b.score.values)
        p = float(ttest_rel(a.score.values, b.score.values).pvalue)
        return {
            **row,
            "ci_low": lo,
            "ci_high": hi,
            "p": p,
            "method": "t-interval over paired seeds",
        }
    return {**row, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "method": "none"}


def paired_statistics(c: pd.DataFrame, mats: dict, n_boot: int = 1000) -> Paired:
    """Seed-mean intervals per group and the paired differences, per benchmark."""
    out = Paired()
    c = c.copy()
    keys = c.apply(recipe_key, axis=1)
    c["key_rule"], c["key_arch"], c["key_point"] = zip(*keys) if len(c) else ([], [], [])
    rows = []
    benches = sorted(dict.fromkeys(c.benchmark), key=lambda b: not is_accuracy(b))
    for bench in benches:  # accuracy first, then the benchmarks in the table's order
        cb = c[c.benchmark == bench]
        boot = {}
        have = [m for m in cb.model if (m, bench) in mats]
        if have:
            try:
                scores = stats.stimulus_scores([mats[(m, bench)] for m in have], n_boot)
                boot = dict(zip(have, scores))
            except NmncError as err:
                out.notes.append(f"{bench}: no resampling of stimuli ({err}).")
        for group, g in cb.groupby("group", sort=False):
            out.intervals[(group, bench)] = group_interval(g, boot)
        region, species = (_text(cb[col]) for col in ("region", "species"))
        name = out.bench_names[bench] = bench_name(bench, region, species)
        for ra, rb in PAIRS:
            for ga_name in dict.fromkeys(cb[cb.key_rule == ra].group):
                ga = cb[cb.group == ga_name]
                arch, point = ga.key_arch.iloc[0], ga.key_point.iloc[0]
                for gb_name in _matches(cb, rb, arch, point):
                    d = _difference(ga, cb[cb.group == gb_name], boot)
                    if d is None:
                        out.notes.append(
                            f"{group_name(ga_name)} and {group_name(gb_name)} share no seed on "
                            f"{name}: no paired difference."
                        )
                        continue
                    rows.append({"benchmark": bench, "a": ga_name, "b": gb_name, **d, "name": name})
    trained = c[c.key_rule.isin(list(RULE_NAMES))]
    short = trained.key_arch.nunique() <= 1 and (trained.key_point == "").all()
    for g in dict.fromkeys(c.group):
        rule = g.split()[0]
        out.names[g] = RULE_NAMES.get(rule, rule) if short else group_name(g)
    present = set(c.key_rule)
    for ra, rb in PAIRS:
        if ra in present and rb not in present:
            out.notes.append(
                f"No {RULE_NAMES[rb]} runs in this results table: {RULE_NAMES[ra]} \u2212 "
                f"{RULE_NAMES[rb]} is not reported."
            )
    if rows:
        d = pd.DataFrame(rows)
        d["resolved"] = (d.ci_low > 0) | (d.ci_high < 0)
        d["claim"] = [claim(r, out.names) for r in d.itertuples()]
        out.differences = d[COLUMNS]
    return out


def materials_for(c: pd.DataFrame, results: Path, extra: dict) -> dict:
    """Artefacts beside the results table, plus ``extra`` (the accuracy materials); a line on
    stderr for committed rows without one."""
    mats = {**load_materials(c, Path(results).parent / FOLDER), **extra}
    missing = c[[(m, b) not in mats for m, b in zip(c.model, c.benchmark)]]
    if len(missing):
        print(
            f"report: {len(missing)} committed rows have no per-stimulus artefact "
            f"(scored before artefacts were kept, or public benchmarks); their intervals are "
            "over seeds only (rerun the same score command to recover them)",
            file=sys.stderr,
        )
    return mats


def fig_differences(d: pd.DataFrame, out: Path, p: Paired | None = None) -> list[Path]:
    """Forest plot of the paired differences with their 95% intervals, a panel per benchmark
    (filled: the interval excludes zero); every panel has the same rows."""
    if d.empty:
        return []
    from nmnc.plots import save, setup

    setup()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names, titles = (p.names, p.bench_names) if p else ({}, {})
    benches = sorted(dict.fromkeys(d.benchmark), key=lambda b: (not is_accuracy(b), b))
    pairs = list(dict.fromkeys(zip(d.a, d.b)))
    where = {pair: len(pairs) - 1 - i for i, pair in enumerate(pairs)}  # first pair on top
    fig, axes = plt.subplots(
        1, len(benches), figsize=(3.4 * len(benches) + 1, 1.2 + 0.32 * len(pairs)), squeeze=False
    )
    for ax, bench in zip(axes[0], benches):
        for _, r in d[d.benchmark == bench].iterrows():
            y = where[(r.a, r.b)]
            if np.isfinite(r.ci_low):
                ax.plot([r.ci_low, r.ci_high], [y, y], color="k", lw=1)
            ax.plot(r["diff"], y, "o", color="C0", mfc="C0" if r.resolved else "white")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.6, len(pairs) - 0.4)
        labels = [f"{names.get(a, a)} \u2212 {names.get(b, b)}" for a, b in pairs]
        ax.set_yticks([where[pair] for pair in pairs], labels if ax is axes[0][0] else [])
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"{titles.get(bench, bench)}\n{bench}", fontsize=8)
        ax.set_xlabel("difference (95% CI)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(4))
    return save(fig, out, "differences")
