"""House habits, checked by the test command: ruff lint and format clean at the configured line
length, and a docstring on every public entry point."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["nmnc", "brain_benchmarks", "model_zoo", "scripts", "tests"]


def _ruff(*args) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert exe, "ruff is not installed; it comes with the test extra: pip install -e '.[test]'"
    return subprocess.run([exe, *args, *PACKAGES], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_clean():
    r = _ruff("check", "--no-cache")
    assert r.returncode == 0, r.stdout[-4000:]


def test_ruff_format_clean():
    r = _ruff("format", "--check", "--no-cache")
    assert r.returncode == 0, f"run 'ruff format' on: {r.stdout[-4000:]}"


def test_public_code_has_docstrings():
    """Every module, and every public module-level function and class, says what it is for."""
    missing = []
    for pkg in ("nmnc", "brain_benchmarks", "model_zoo", "scripts"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            text = path.read_text()
            tree = ast.parse(text)
            where = path.relative_to(ROOT)
            if text.strip() and not ast.get_docstring(tree):
                missing.append(f"{where} (module)")
            for node in tree.body:
                public = isinstance(
                    node, (ast.FunctionDef, ast.ClassDef)
                ) and not node.name.startswith("_")
                if public and not ast.get_docstring(node):
                    missing.append(f"{where}:{node.lineno} {node.name}")
    assert not missing, "no docstring: " + ", ".join(missing)
