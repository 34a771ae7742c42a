"""The public API: each package's __init__ lists its surface, and every name resolves to what it
says (not to a submodule of the same name), even after the submodules have been imported."""

import importlib
import inspect

import pytest


@pytest.mark.parametrize("package", ["nmnc", "brain_benchmarks", "model_zoo"])
def test_public_names_resolve(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__
    for _ in range(2):  # the second pass runs after every submodule behind the names was imported
        for name in pkg.__all__:
            obj = getattr(pkg, name)
            assert not inspect.ismodule(obj), f"{package}.{name} is a module"
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert obj.__doc__, f"{package}.{name} has no docstring"


def test_stages_do_not_call_command_lines():
    """No module builds argv lists for another command line: stages call typed functions."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    imports_a_cli = re.compile(
        r"^\s*from\s+\S+\s+import\s+.*\b(main|parser|config_from_args)\b", re.M
    )
    offenders = []
    for pkg in ("nmnc", "brain_benchmarks", "model_zoo"):
        for path in (root / pkg).rglob("*.py"):
            text = path.read_text()
            hits = [
                m.group(0).strip()
                for m in imports_a_cli.finditer(text)
                if "cli import" not in m.group(0)
            ]
            hits += [n for n in ("parse_args([", ".main([") if n in text]
            offenders += [f"{path.relative_to(root)}: {h}" for h in hits]
    assert not offenders, offenders
