"""Lazy re-exports for package ``__init__`` files: the public surface is listed in one place, and
importing the package loads nothing heavy (no pandas or plotting until a name is used)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def exports(package: str, table: dict[str, list[str]]) -> tuple[Callable[[str], object], list[str]]:
    """``__getattr__`` and ``__all__`` for ``package`` from ``{submodule: [names]}``.

    ``"public=attr"`` exports ``submodule.attr`` as ``public``: a function may not carry the name
    of a submodule, since importing the submodule rebinds that name on the package.
    """
    where = {}
    for module, names in table.items():
        for name in names:
            public, _, attr = name.partition("=")
            if public in table:
                raise ValueError(
                    f"{package}.{public} would be shadowed by the submodule of that name"
                )
            where[public] = (module, attr or public)

    def __getattr__(name: str):
        if name in where:
            module, attr = where[name]
            return getattr(importlib.import_module(f".{module}", package), attr)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)
