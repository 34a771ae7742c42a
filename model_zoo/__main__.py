"""``python -m model_zoo --list | build NAME | plugin NAME|CHECKPOINT --out DIR``: the model zoo's
commands."""

from nmnc.cli import entry, parser, subcommands

from . import build, plugin
from .registry import list_lines


def main(argv=None) -> int:
    """List zoo entries, build one from its recipe, or write its Brain-Score plugin."""
    p = parser(
        "python -m model_zoo",
        __doc__,
        data_root=False,
        print_config=False,
        quiet=False,
        listing="list zoo names, whether their weights are present, and key metrics",
    )
    sub = subcommands(p)
    sub.required = False
    b = parser(
        "",
        "train a zoo entry from its recipe (resumes an interrupted build)",
        parent=sub,
        name="build",
        sets="setting on top of the recipe (any --set key of nmnc.train)",
    )
    build.add_arguments(b)
    g = parser(
        "",
        "write a Brain-Score plugin for a zoo model or a checkpoint",
        parent=sub,
        name="plugin",
        out=plugin.PLUGIN_OUT,
    )
    plugin.add_arguments(g)
    args = p.parse_args(argv)
    if args.list:
        print(f"{'name':14s} {'arch':7s} {'rule':5s} {'weights':16s} metrics")
        print("\n".join(line.rstrip() for line in list_lines()))
        return 0
    if args.command == "build":
        return build.run(args)
    if args.command == "plugin":
        return plugin.run(args)
    p.error("give a command (build or plugin) or --list")


if __name__ == "__main__":
    entry(main, "model_zoo")
