"""The defaults table: NMNC's open choices compared by gradient cosine and short-run accuracy.

    python -m nmnc.analyze defaults --out reports/defaults [--set steps=40 --set seeds=0,1]

Every variant changes one setting of the base NMNC settings (NMNC's defaults with ``base``
applied: P=4, as the CPU recipes train). An entry ``a=x+b=y`` changes ``b`` against the entry
``a=x`` (its context: estimators compared in channel space, say). Beside the variants, the
reference rules: ``vnc`` (energy-matched to NMNC), ``vnc-unmatched``, ``readout`` (hidden
layers fixed at initialisation) and ``bp``, with the base settings that apply to them.

For each variant and reference:

(a) gradient cosine: the median over hidden layers of the RMS over test images of the cosine
    between the rule's activity-gradient estimate (``rule.estimate``, as in training) and the
    true gradient, on a small network trained briefly with BP (``trained``) and at
    initialisation (``init``). NMNC's manifolds are its own estimators, fed ``fit_steps``
    batches of training images first; amortised feedback is averaged over ``amortise_batches``
    batches of training images. BP's cosine is 1 and the read-out's 0 (it estimates nothing);
(b) short-run accuracy: ``nmnc.training.train`` for ``steps`` steps on ``train_examples``
    images, once per seed. Runs are paired: every rule and variant sees the same initial weights,
    data order and validation split for a given seed.

Writes ``defaults.csv`` (one row per variant and seed) and ``defaults.md`` (the table averaged
over seeds, the command that made it, and a verdict per choice generated from the numbers: a
variant is called clearly better or worse when its validation accuracy differs from its
reference's by at least ``min_gain`` with the same sign for every seed).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..errors import NmncError, UnknownNameError
from ..io import atomic_write_text
from ..rules import RULES, build_rule
from .gradient import (
    activity,
    clean_batch,
    cosines,
    estimate,
    sample_images,
    true_gradients,
    warm_batches,
)

DEFAULTS = "defaults"  # the label of the base settings' row
VARIANTS = (
    DEFAULTS,
    "space=channel",
    "centered=false",
    "mode=all",
    "k=8",
    "k=128",
    "P=1",
    "P=16",
    "estimator=oja",
    "space=channel+estimator=ema",  # ema keeps an n x n covariance: too large for map-space conv1
    "noise_shape=white",  # the default is pca since the first run of this table
    "feedback=amortised",
    "train.grad_clip=0",  # hidden-layer clipping (the read-out is never clipped) vs none
)
REFERENCES = ("vnc", "vnc-unmatched", "readout", "bp")
TRAIN = "train."  # a variant key with this prefix is a training setting, not an NMNC one
COLUMNS = [
    "variant",
    "choice",
    "reference",
    "rule",
    "seed",
    "grad_cos_trained",
    "grad_cos_init",
    "val_acc",
    "test_acc",
    "train_s",
    "perturbations",
]


@dataclass(frozen=True)
class DefaultsConfig:
    """What :func:`defaults_table` compares, how long it trains, and where the tables go."""

    out: str  # folder for defaults.csv and defaults.md
    data_root: str | None = None
    model: str = "cnn"
    width: float = 1.0  # the model's width multiplier
    base: dict = field(default_factory=lambda: {"P": 4})  # NMNC settings every variant starts from
    variants: tuple[str, ...] = VARIANTS  # 'defaults', 'key=value' or 'context=x+key=value'
    references: tuple[str, ...] = REFERENCES  # other rules, with the base settings they take
    seeds: tuple[int, ...] = (0, 1)  # one paired training run per seed
    steps: int = 40  # training steps per run
    batch_size: int = 64
    train_examples: int = 2560  # CIFAR-10 training images per run (seeded class-balanced subset)
    val_examples: int = 1000  # held-out validation images (the verdicts use these)
    eval_examples: int = 1000  # test images
    lr: float = 0.05
    grad_clip: float = 1.0
    bp_steps: int = 100  # steps of the BP network the 'trained' gradient cosines are measured on
    grad_images: int = 32  # test images whose gradients are estimated
    manifold_images: int = 512  # training images the manifolds and amortised feedback learn from
    fit_steps: int = 16  # batches of batch_size training images each rule observes first
    amortise_batches: int = 4  # batches of grad_images training images J_bar is averaged over
    min_gain: float = 0.01  # validation-accuracy difference a verdict calls clear
    progress: bool = True

    def __post_init__(self):
        for key in ("variants", "references", "seeds"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("steps", "batch_size", "train_examples", "bp_steps", "grad_images"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("manifold_images", "fit_steps", "amortise_batches", "eval_examples"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not self.seeds:
            raise NmncError("seeds must name at least one seed, e.g. seeds=0,1")
        if not self.variants and not self.references:
            raise NmncError("nothing to compare: give variants or references")
        if self.min_gain < 0:
            raise NmncError(f"min_gain must be 0 or positive, got {self.min_gain}")
        for ref in self.references:
            if ref not in RULES or ref == "nmnc":
                raise UnknownNameError(
                    "reference rule", ref, [r for r in RULES.names() if r != "nmnc"]
                )
        labels = set(self.variants)
        for v in self.variants:
            nmnc_settings(self, v)  # every variant's settings are valid NMNC settings
            train_config(self, "nmnc", nmnc_settings(self, v), 0, Path("-"), 1, train_sets(v))
            reference = reference_of(v)
            if reference is not None and reference not in labels:
                raise NmncError(
                    f"variant '{v}' is compared with '{reference}', which is not among the "
                    "variants; add it"
                )


# ---- variants -------------------------------------------------------------------------------
def parse_variant(variant: str) -> list[tuple[str, str]]:
    """``'a=x+b=y'`` -> ``[('a', 'x'), ('b', 'y')]``; ``'defaults'`` -> ``[]``."""
    if variant == DEFAULTS:
        return []
    pairs = []
    for part in variant.split("+"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise NmncError(
                f"variant '{variant}' is not 'key=value' (or 'a=x+b=y', or '{DEFAULTS}')"
            )
        pairs.append((key.strip(), value.strip()))
    return pairs


def choice_of(variant: str) -> str:
    """The setting a variant compares: its last key (``'defaults'`` for the base row)."""
    pairs = parse_variant(variant)
    return pairs[-1][0] if pairs else DEFAULTS


def reference_of(variant: str) -> str | None:
    """The variant a variant is compared with: its context, or the base row (None for it)."""
    pairs = parse_variant(variant)
    if not pairs:
        return None
    return "+".join(f"{k}={v}" for k, v in pairs[:-1]) or DEFAULTS


def nmnc_settings(cfg: DefaultsConfig, variant: str):
    """NMNC's settings for ``variant``: the defaults, then ``cfg.base``, then the variant's."""
    own = {k: v for k, v in parse_variant(variant) if not k.startswith(TRAIN)}
    return RULES.settings("nmnc", {**cfg.base, **own})


def train_sets(variant: str) -> dict:
    """The training settings a variant changes (``train.grad_clip=0``), without the prefix."""
    return {k[len(TRAIN) :]: v for k, v in parse_variant(variant) if k.startswith(TRAIN)}


def reference_settings(cfg: DefaultsConfig, rule: str):
    """A reference rule's settings: its defaults with the base settings it has fields for."""
    known = {f.name for f in dataclasses.fields(RULES.get(rule).settings)}
    return RULES.settings(rule, {k: v for k, v in cfg.base.items() if k in known})


def entries(cfg: DefaultsConfig) -> list[tuple[str, str, object]]:
    """(label, rule, settings) for every row of the table, variants first."""
    rows = [(v, "nmnc", nmnc_settings(cfg, v)) for v in cfg.variants]
    return rows + [(r, r, reference_settings(cfg, r)) for r in cfg.references]


# ---- (a) gradient cosine --------------------------------------------------------------------
def gradient_cosine(model, rule_name: str, settings, images, cfg: DefaultsConfig) -> float:
    """Median over hidden layers of the RMS cosine of the rule's estimate with the true gradient.

    ``images`` are (x, y, xm, ym, manifold activities): the test batch, training images and
    their activities. BP's cosine is 1 and the read-out's 0 (it estimates no hidden gradient).
    """
    if rule_name == "bp":
        return 1.0
    if rule_name == "readout":
        return 0.0
    x, y, xm, ym, acts = images
    model.eval()
    rule = build_rule(rule_name, model, settings)
    fit(rule, acts, cfg)
    batch = clean_batch(model, x, y)
    true = true_gradients(model, batch)
    warm = warm_batches(model, xm, ym, acts, cfg.grad_images, cfg.amortise_batches)
    est = estimate(rule, batch, torch.Generator().manual_seed(0), warm)
    rms = [(cosines(est[n].float(), true[n]) ** 2).mean().sqrt().item() for n in rule.layers]
    return float(torch.tensor(rms).median())


def fit(rule, acts: dict, cfg: DefaultsConfig) -> None:
    """Feed the rule's manifolds (if any) ``fit_steps`` batches of training activity, as
    training would, then refresh them once more so they reflect every batch."""
    if not hasattr(rule, "manifolds"):
        return
    n, B = len(next(iter(acts.values()))), cfg.batch_size
    for t in range(cfg.fit_steps):
        start = (t * B) % n
        idx = torch.arange(start, start + B) % n
        rule.t = t
        rule.observe({name: acts[name][idx] for name in rule.layers})
    for m in rule.manifolds.values():
        m.refresh_now()
    rule.t = 0


# ---- (b) short-run accuracy -----------------------------------------------------------------
def train_config(
    cfg: DefaultsConfig,
    rule: str,
    settings,
    seed: int,
    out: Path,
    steps: int,
    sets: dict | None = None,
):
    """The TrainConfig of one short run (``sets``: training settings a variant changes)."""
    from .._registry import apply_overrides
    from ..config import TrainConfig

    base = TrainConfig(
        model=cfg.model,
        rule=rule,
        data_root=cfg.data_root,
        train_examples=cfg.train_examples,
        val_examples=cfg.val_examples,
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        grad_clip=cfg.grad_clip,
        seed=seed,
        eval_every=steps,
        eval_examples=cfg.eval_examples,
        ckpt_every=steps,
        num_workers=0,
        out=str(out),
        model_settings={"width": cfg.width},
        rule_settings=dataclasses.asdict(settings),
    )
    return apply_overrides(base, sets or {}, "training setting")


def _slug(label: str) -> str:
    return label.replace("=", "-").replace("+", "_")


# ---- the table ------------------------------------------------------------------------------
def defaults_table(cfg: DefaultsConfig) -> dict[str, pd.DataFrame]:
    """Measure every variant and reference; write defaults.csv and defaults.md into ``cfg.out``.

    Returns ``runs`` (one row per variant and seed, as in defaults.csv) and ``summary`` (means
    over seeds, as in defaults.md).
    """
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..progress import tqdm
    from ..training import train

    rows_in = entries(cfg)
    with tempfile.TemporaryDirectory(prefix="nmnc-defaults-") as tmp:
        tmp = Path(tmp)
        # the BP network the 'trained' cosines are measured on
        bp = train(
            train_config(cfg, "bp", reference_settings(cfg, "bp"), 0, tmp / "bp", cfg.bp_steps),
            progress=False,
        )
        ckpt = load_checkpoint(bp.checkpoint)
        data = load_dataset(ckpt.dataset, cfg.data_root, input_size=ckpt.input_size)
        x, y, xm, ym = sample_images(data, cfg.grad_images, cfg.manifold_images)
        cos = {}
        for state, model in (("trained", ckpt.build_model()), ("init", ckpt.untrained_model())):
            model.eval()
            images = (x, y, xm, ym, activity(model, xm)[1])
            for label, rule, settings in tqdm(
                rows_in, desc=f"gradient cosine ({state})", disable=not cfg.progress
            ):
                cos[label, state] = gradient_cosine(model, rule, settings, images, cfg)
        rows = []
        work = [(e, seed) for e in rows_in for seed in cfg.seeds]
        for (label, rule, settings), seed in tqdm(
            work, desc="short runs", disable=not cfg.progress
        ):
            run = tmp / f"{_slug(label)}_s{seed}"
            sets = train_sets(label) if rule == "nmnc" else {}
            config = train_config(cfg, rule, settings, seed, run, cfg.steps, sets)
            res = train(config, progress=False)
            rows.append(
                {
                    "variant": label,
                    "choice": choice_of(label) if rule == "nmnc" else "reference",
                    "reference": (reference_of(label) if rule == "nmnc" else DEFAULTS) or "",
                    "rule": rule,
                    "seed": seed,
                    "grad_cos_trained": cos[label, "trained"],
                    "grad_cos_init": cos[label, "init"],
                    "val_acc": res.val_acc if res.val_acc is not None else math.nan,
                    "test_acc": res.test_acc,
                    "train_s": res.train_seconds,
                    "perturbations": res.perturbations,
                }
            )
    df = pd.DataFrame(rows, columns=COLUMNS)
    summary = summarise(df)
    out = Path(cfg.out)
    atomic_write_text(out / "defaults.csv", df.to_csv(index=False))
    atomic_write_text(out / "defaults.md", markdown(cfg, df, summary))
    return {"runs": df, "summary": summary}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds per variant, with the paired difference in validation accuracy from the
    variant's reference (``d_val``: mean over seeds; ``d_val_min``/``d_val_max``: its range)."""
    keys = ["variant", "choice", "reference", "rule"]
    means = (
        df.groupby(keys, sort=False)[
            ["grad_cos_trained", "grad_cos_init", "val_acc", "test_acc", "train_s"]
        ]
        .mean()
        .reset_index()
    )
    val = df.pivot_table(index="variant", columns="seed", values="val_acc", sort=False)
    d_mean, d_min, d_max = [], [], []
    for _, r in means.iterrows():
        if r.reference and r.reference in val.index and r.variant != r.reference:
            d = val.loc[r.variant] - val.loc[r.reference]
            d_mean.append(d.mean())
            d_min.append(d.min())
            d_max.append(d.max())
        else:
            d_mean.append(math.nan)
            d_min.append(math.nan)
            d_max.append(math.nan)
    return means.assign(d_val=d_mean, d_val_min=d_min, d_val_max=d_max)


def verdicts(summary: pd.DataFrame, min_gain: float) -> list[str]:
    """One line per variant against its reference, and one recommendation per choice."""
    lines = []
    by_label = summary.set_index("variant")
    if {DEFAULTS, "readout"} <= set(by_label.index):
        gap = by_label.loc[DEFAULTS, "val_acc"] - by_label.loc["readout", "val_acc"]
        if gap < min_gain:
            lines.append(
                f"- **caution**: the NMNC defaults beat the read-out-only control by only "
                f"{gap:+.3f} in validation accuracy: at this budget hidden-layer learning barely "
                "shows in accuracy, so accuracy differences between variants are mostly noise; "
                "weigh the gradient cosines more."
            )
    for choice, group in summary[summary.rule == "nmnc"].groupby("choice", sort=False):
        if choice == DEFAULTS:
            continue
        better = []
        for _, r in group.iterrows():
            ref = by_label.loc[r.reference]
            clear = r.d_val_min >= min_gain or r.d_val_max <= -min_gain
            word = ("better" if r.d_val > 0 else "worse") if clear else "no clear difference"
            if clear and r.d_val > 0:
                better.append(r.variant)
            lines.append(
                f"- **{choice}**: `{r.variant}` vs `{r.reference}`: validation accuracy "
                f"{r.val_acc:.3f} vs {ref.val_acc:.3f} ({r.d_val:+.3f}; per-seed range "
                f"{r.d_val_min:+.3f} to {r.d_val_max:+.3f}): {word}; gradient cosine trained "
                f"{r.grad_cos_trained:.3f} vs {ref.grad_cos_trained:.3f}, init "
                f"{r.grad_cos_init:.3f} vs {ref.grad_cos_init:.3f}; time per run "
                f"{r.train_s / max(ref.train_s, 1e-9):.2f}x."
            )
        candidates = summary[summary.variant.isin([*group.variant, *group.reference])]
        cos = candidates.set_index("variant")[["grad_cos_trained", "grad_cos_init"]].mean(1)
        hint = f" (mean gradient cosine, trained and init, is highest for `{cos.idxmax()}`)"
        if better:
            lines.append(f"  - {choice}: clearly better in accuracy: {', '.join(better)}{hint}.")
        else:
            lines.append(f"  - {choice}: keep the reference setting on accuracy{hint}.")
    if DEFAULTS in by_label.index:
        base = by_label.loc[DEFAULTS]
        for _, r in summary[summary.rule != "nmnc"].iterrows():
            lines.append(
                f"- reference `{r.variant}`: validation accuracy {r.val_acc:.3f} (NMNC defaults "
                f"{base.val_acc:.3f}; {r.d_val:+.3f}), gradient cosine trained "
                f"{r.grad_cos_trained:.3f}, init {r.grad_cos_init:.3f}."
            )
    return lines


def command_line(cfg: DefaultsConfig) -> str:
    """The ``python -m nmnc.analyze defaults`` command that reproduces ``cfg``."""
    parts = ["python -m nmnc.analyze defaults", f"--out {cfg.out}"]
    default = DefaultsConfig(out=cfg.out)
    for f in dataclasses.fields(cfg):
        if f.name in ("out", "progress", "data_root"):
            continue
        value = getattr(cfg, f.name)
        if value == getattr(default, f.name):
            continue
        if isinstance(value, dict):
            parts += [f"--set {f.name}.{k}={v}" for k, v in value.items()]
        elif isinstance(value, tuple):
            parts.append(f"--set {f.name}={','.join(map(str, value))}")
        else:
            parts.append(f"--set {f.name}={value}")
    return " ".join(parts)


def markdown(cfg: DefaultsConfig, df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """defaults.md: the command, the settings, the table and the verdicts."""
    base = nmnc_settings(cfg, DEFAULTS)
    shown = summary.drop(columns=["rule"]).rename(
        columns={"grad_cos_trained": "cos trained", "grad_cos_init": "cos init"}
    )
    fmt = {c: "{:.3f}" for c in shown.columns if shown[c].dtype.kind == "f"}
    fmt["train_s"] = "{:.1f}"
    cells = shown.assign(**{c: shown[c].map(lambda v, f=f: f.format(v)) for c, f in fmt.items()})
    cells = cells.replace("nan", "")
    table = [
        "| " + " | ".join(cells.columns) + " |",
        "|" + "---|" * len(cells.columns),
    ] + ["| " + " | ".join(str(v) for v in row) + " |" for row in cells.itertuples(index=False)]
    settings = ", ".join(
        f"{f.name}={getattr(base, f.name)}"
        for f in dataclasses.fields(base)
        if f.name not in ("max_batch",)
    )
    return "\n".join(
        [
            "# NMNC defaults table",
            "",
            "Generated by `nmnc.analysis.defaults`; do not edit by hand.",
            "",
            "```",
            command_line(cfg),
            "```",
            "",
            f"Model `{cfg.model}` (width {cfg.width}); each run trains {cfg.steps} steps of "
            f"batch {cfg.batch_size} on {cfg.train_examples} CIFAR-10 images (lr {cfg.lr}, "
            f"hidden-layer grad clip {cfg.grad_clip}), seeds {', '.join(map(str, cfg.seeds))} "
            f"(paired); validation accuracy on {cfg.val_examples} held-out training images, "
            f"test accuracy on {cfg.eval_examples} test images. Gradient cosine: median over "
            f"layers of the RMS cosine over {cfg.grad_images} test images, on a cnn trained "
            f"{cfg.bp_steps} BP steps (`cos trained`) and at initialisation (`cos init`).",
            "",
            f"Base NMNC settings (the `{DEFAULTS}` row): {settings}.",
            "",
            "`d_val`: validation accuracy minus the reference row's, mean over seeds "
            "(paired), with its range over seeds.",
            "",
            *table,
            "",
            "## Verdicts",
            "",
            f"A difference is clear when every seed's paired difference in validation accuracy "
            f"is at least {cfg.min_gain} in the same direction.",
            "",
            *verdicts(summary, cfg.min_gain),
            "",
        ]
    )
