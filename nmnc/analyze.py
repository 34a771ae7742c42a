"""Analyses of checkpoints and training runs.

    python -m nmnc.analyze alignment --checkpoint PATH [--set images=1000] --out DIR
    python -m nmnc.analyze gradient --checkpoint PATH [--set P=1,4,16 --set k=8,32] --out DIR
    python -m nmnc.analyze width-sweep [--set widths=0.25,0.5,1,2] [--set recipe=cnn-width]
        --out DIR
    python -m nmnc.analyze efficiency --runs DIR [DIR ...] [--set target_acc=0.3] --out DIR
    python -m nmnc.analyze defaults [--set steps=40 --set seeds=0,1] --out DIR
    python -m nmnc.analyze recurrent-gradient --checkpoint PATH [--set time=all,step] --out DIR
    python -m nmnc.analyze recurrent-alignment --checkpoint PATH [--set k=1,4,16] --out DIR

Files written under --out: alignment (alignment.csv, angles.csv, dimension.csv, alignment.png,
dimension.png), gradient (gradient.csv), width-sweep (width.csv, width_fit.csv, width.png, runs/),
efficiency (efficiency.csv, to_target.csv, efficiency.png), defaults (defaults.csv, defaults.md),
recurrent-gradient (gradient.csv), recurrent-alignment (alignment.csv, dimension.csv).
"""

from __future__ import annotations

import dataclasses

from .cli import apply_sets, entry, parser, print_config, require_out, subcommands


def _table(df) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def main(argv=None) -> int:
    """Run one analysis and print its summary table."""
    from .analysis import (
        AlignmentConfig,
        DefaultsConfig,
        EfficiencyConfig,
        GradientConfig,
        RecurrentAlignmentConfig,
        RecurrentGradientConfig,
        WidthSweepConfig,
        analyse_checkpoint,
        defaults_table,
        gradient_quality,
        gradient_summary,
        recurrent_alignment,
        recurrent_gradients,
        sample_efficiency,
        width_sweep,
    )

    p = parser(
        "python -m nmnc.analyze",
        __doc__.split("\n\n")[0],
        data_root=False,
        print_config=False,
        quiet=False,
    )
    sub = subcommands(p)
    jobs = {
        "alignment": (
            AlignmentConfig,
            "Jacobian-manifold alignment, principal angles and dimension of every hidden layer",
        ),
        "gradient": (
            GradientConfig,
            "gradient quality: VNC, NMNC and read-out estimates against backprop, by P and k",
        ),
        "width-sweep": (
            WidthSweepConfig,
            "dimension against width: train each width briefly (or take checkpoints), "
            "fit power laws",
        ),
        "efficiency": (
            EfficiencyConfig,
            "accuracy against examples and perturbations; budget to reach a target accuracy",
        ),
        "defaults": (
            DefaultsConfig,
            "the defaults table: NMNC's open choices by gradient cosine and short-run accuracy",
        ),
        "recurrent-gradient": (
            RecurrentGradientConfig,
            "recurrent models: VNC, NMNC and read-out estimates through time against BPTT",
        ),
        "recurrent-alignment": (
            RecurrentAlignmentConfig,
            "recurrent models: alignment of the hidden-state manifold with the Jacobian, dimension",
        ),
    }
    for name, (config, help_text) in jobs.items():
        fields = [
            f.name
            for f in dataclasses.fields(config)
            if f.name not in ("checkpoint", "runs", "out", "data_root", "progress")
        ]
        s = parser(
            "",
            help_text,
            parent=sub,
            name=name,
            out="folder for the tables and figures",
            sets=f"analysis setting: {', '.join(fields)}",
            data_root="data_root" in {f.name for f in dataclasses.fields(config)},
        )
        if name in ("alignment", "gradient", "recurrent-gradient", "recurrent-alignment"):
            s.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
        if name == "efficiency":
            s.add_argument(
                "--runs", nargs="+", action="extend", required=True, help="run folders (repeatable)"
            )
    args = p.parse_args(argv)
    config, _ = jobs[args.command]
    fixed = {
        k: v
        for k, v in (
            ("checkpoint", getattr(args, "checkpoint", None)),
            ("runs", tuple(getattr(args, "runs", None) or ()) or None),
            ("out", args.out),
        )
        if v is not None
    }
    if "data_root" in {f.name for f in dataclasses.fields(config)}:
        fixed.update(data_root=args.data_root, progress=not args.quiet)
    needs_out = args.command in ("width-sweep", "defaults")  # out is a required field
    base = config(**{"out": "", **fixed}) if needs_out else config(**fixed)
    flags = {
        "checkpoint": "--checkpoint",
        "runs": "--runs",
        "out": "--out",
        "data_root": "--data-root",
        "progress": "--quiet",
    }
    cfg = apply_sets(base, args.sets, f"{args.command} setting", flags)
    if args.print_config:
        return print_config(cfg)
    require_out(args, f"the {args.command} tables and figures")
    if args.command == "alignment":
        print(_table(analyse_checkpoint(cfg)["summary"]))
    elif args.command == "gradient":
        df = gradient_quality(cfg)
        for value in ("rms_cos", "rms_cos_theory"):
            print(f"median over layers of {value} (rows: state, rule, feedback, k; columns: P)")
            print(gradient_summary(df, value).to_string(float_format=lambda v: f"{v:.3f}"))
    elif args.command == "recurrent-gradient":
        from .analysis.recurrent import gradient_table

        table = gradient_table(recurrent_gradients(cfg))
        print("RMS cosine with BPTT (rows: state, rule, noise_shape, time, k; columns: P)")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    elif args.command == "recurrent-alignment":
        align, dims = recurrent_alignment(cfg)
        print(_table(align), _table(dims), sep="\n\n")
    elif args.command == "defaults":
        tables = defaults_table(cfg)
        print(_table(tables["summary"]))
        print(f"verdicts: {args.out}/defaults.md")
    elif args.command == "width-sweep":
        tables = width_sweep(cfg)
        print(_table(tables["width"]), _table(tables["fit"]), sep="\n\n")
    else:
        print(
            sample_efficiency(cfg)["summary"].to_string(
                index=False, float_format=lambda v: f"{v:.4f}"
            )
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    entry(main, "nmnc.analyze")
