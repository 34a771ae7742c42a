"""``python -m model_zoo list``: zoo names, whether their weights are present, key metrics."""
import sys

from nmnc.errors import NmncError, run_cli

from .registry import list_lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] not in ([], ["list"]):
        raise NmncError(f"unknown command '{argv[0]}'; use 'python -m model_zoo list', 'python -m model_zoo.build NAME' or 'python -m model_zoo.plugin NAME --out DIR'")
    print(f"{'name':14s} {'arch':7s} {'rule':5s} {'weights':16s} metrics")
    print("\n".join(list_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="model_zoo"))
